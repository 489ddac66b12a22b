"""Grid runs as Ray tasks: on an embedded local Ray, or on an existing Ray cluster given its address.

Only the driver writes records (the caller's ``record`` callback, one at a time, as each run ends),
so the results file keeps one writer and its atomic appends. A task whose worker process dies is
resubmitted by Ray at most ``retries`` times; a run still without a result is not recorded, and
the grid ends with :class:`~agwm.guards.RunFailed` naming it, after every other run has been
recorded, so rerunning the grid retries it alone. On a cluster, every node needs agwm installed
and the grid's data, model and output paths readable at the same paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .guards import RunFailed
from .settings import ConfigError

INSTALL_HINT = 'pip install ".[ray]"'


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray is not allowed: Ray is not installed ({INSTALL_HINT})") from None
    return ray


def run_on_ray(runs: Sequence[Any], execute: Callable[[Any], dict], record: Callable[[dict], None], *,
               address: str | None = None, local_cpus: int = 1, cpus_per_run: float = 1,
               gpus_per_run: float = 0, retries: int = 2) -> None:
    """Run ``execute(run)`` for each of ``runs`` as a Ray task requesting ``cpus_per_run`` CPUs and
    ``gpus_per_run`` GPUs, and pass each result to ``record`` as it arrives. Without ``address`` a
    local Ray with ``local_cpus`` CPUs is started (and stopped after); with one, that cluster is joined."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # Ray runs its workers at nice 15 by default: beside any busy process they would starve,
            # where the process pool's workers run at this process's priority
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=local_cpus, num_gpus=None if gpus_per_run else 0, include_dashboard=False,
                     log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)(execute)
    pending = {task.remote(run): run for run in runs}
    lost = []
    try:
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done)
            try:
                result = ray.get(done)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.RayActorError, ray.exceptions.ObjectLostError):
                lost.append(run.key)
                continue
            except ray.exceptions.RayTaskError as error:  # the run's own exception: stop as the pool does
                raise error.as_instanceof_cause() from None
            record(result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
    if lost:
        raise RunFailed(f"{len(lost)} run(s) lost their worker {retries + 1} times and were not recorded: "
                        f"{', '.join(lost)}; rerun the grid to retry them")
