"""Run a function over items in a pool of spawned processes, handing each result over as it comes,
and stop the pool at once when anything goes wrong.

``ProcessPoolExecutor``'s own ``with`` block waits, on the way out, for every submitted call to
finish: a grid stopped by SIGTERM, Ctrl-C or a failed run would go on running (and not record)
hours of runs. Here the first exception, a signal's among them, terminates the workers, drops the
calls not started and is raised again; what was handed over before it stays handed over.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm.auto import tqdm


def run_in_processes(fn: Callable, items: Iterable, workers: int, on_result: Callable[[object], None]) -> None:
    """Call ``on_result(fn(item))`` for each item, ``workers`` calls at a time in spawned processes
    (not forked: a forked child cannot use CUDA that its parent has initialised), in the order the
    calls finish."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_thread_lock_for_progress_bars)
    try:
        for future in as_completed([pool.submit(fn, item) for item in items]):
            on_result(future.result())
    except BaseException:
        _stop_now(pool)
        raise
    pool.shutdown()


def _thread_lock_for_progress_bars() -> None:
    """tqdm's default lock holds a multiprocessing semaphore, which a terminated worker leaves
    behind (and the resource tracker warns of at exit); a worker's bars need a thread lock only."""
    tqdm.set_lock(threading.RLock())


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers (their calls are lost) and drop the calls not started."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
    pool.shutdown(wait=True, cancel_futures=True)  # the pool's thread sees its workers gone and closes its queues
