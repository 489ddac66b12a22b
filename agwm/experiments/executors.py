"""Where a grid's runs execute: this process, a pool of spawned processes, or Ray tasks.

The process pool hands each result over as it comes and stops at once when anything goes wrong:
``ProcessPoolExecutor``'s own ``with`` block waits for every submitted call, so a grid stopped by
SIGTERM, Ctrl-C or a failed run would go on running (and not record) hours of runs; here the first
exception, a signal's among them, terminates the workers, drops the calls not started and is raised
again.

On Ray (an embedded local Ray, or a cluster given its address) only the driver writes records (the
caller's ``record`` callback, one at a time), so the results file keeps one writer. A task whose
worker dies is resubmitted at most ``retries`` times; a run still without a result is not recorded,
and the grid ends with :class:`~agwm.training.guards.RunFailed` naming it, after every other run has been
recorded, so rerunning the grid retries it alone. On a cluster, every node needs agwm installed and
the grid's data, model and output paths readable at the same paths."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

from agwm.errors import ConfigError
from agwm.registry import install_hint
from agwm.training.guards import RunFailed


def run_in_processes(fn: Callable, items: Iterable, workers: int, on_result: Callable[[object], None]) -> None:
    """Call ``on_result(fn(item))`` for each item, ``workers`` calls at a time in spawned processes
    (not forked: a forked child cannot use CUDA that its parent has initialised), in the order the
    calls finish. Each process computes on :func:`threads_per_worker` CPU threads."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads_per_worker(workers),))
    try:
        for future in as_completed([pool.submit(fn, item) for item in items]):
            on_result(future.result())
    except BaseException:
        _stop_now(pool)
        raise
    pool.shutdown()


def threads_per_worker(workers: int) -> int | None:
    """The CPU threads each of ``workers`` processes computes on: the machine's cores shared out,
    at least one (torch would give each process every core, and the processes would slow each
    other down several times over); None where ``OMP_NUM_THREADS`` already says."""
    return None if os.environ.get("OMP_NUM_THREADS") else max(1, (os.cpu_count() or 1) // workers)


def _start_worker(threads: int | None) -> None:
    """A worker's threads; and a thread lock for its progress bars: tqdm's default lock holds a
    multiprocessing semaphore, which a terminated worker leaves behind (and the resource tracker
    warns of at exit)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    tqdm.set_lock(threading.RLock())


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers (their calls are lost) and drop the calls not started."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
    pool.shutdown(wait=True, cancel_futures=True)  # the pool's thread sees its workers gone and closes its queues


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray is not allowed: Ray is not installed ({install_hint('ray')})") from None
    return ray


def join_cluster(ray, address: str) -> None:
    """``ray.init(address)``, or one line naming ``--address`` when no cluster lets this process in.
    Ray (2.5x and later) turns on token authentication for a cluster that ``ray start`` begins where
    a token exists (``~/.ray/auth_token``), but a driver given an explicit address sends its token
    only with ``RAY_AUTH_MODE=token``: say so rather than show Ray's traceback. A ``host:port`` where
    nothing listens is refused first: there ``ray.init`` would retry without end."""
    no_cluster = "no Ray cluster answered there (start one with `ray start --head`, or give its host:port)"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError:
            raise ConfigError(f"--address {address} is not allowed: {no_cluster}") from None
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as error:
        chain, cause = [], error
        while cause is not None:
            chain.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__
        if "authentication" in " ".join(chain).lower():
            hint = ("the cluster asks for a token: export RAY_AUTH_MODE=token, with the cluster's token in "
                    "~/.ray/auth_token or RAY_AUTH_TOKEN")
        else:
            hint = no_cluster
        raise ConfigError(f"--address {address} is not allowed: {hint}") from None


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
            join_cluster(ray, address)
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
