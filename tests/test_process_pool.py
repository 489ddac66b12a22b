"""The grid's process pool hands every result over, and the first exception (a failed call, or a
signal's raised while a result is handed over) stops the other calls at once instead of waiting
for them."""

import os
import signal
import time

import pytest

from agwm.cli import Interrupted
from agwm.experiments.executors import run_in_processes, threads_per_worker

pytestmark = pytest.mark.slow  # every test here spawns worker processes


def square(x):
    return x * x


def worker_threads(_):
    import torch

    return torch.get_num_threads()


def sleep_or_fail(item):
    """("sleep", pidfile): write this process's pid, then sleep for two minutes. ("fail" | "return",
    pidfile): wait until the sleeper runs, then raise or return."""
    what, pidfile = item
    if what == "sleep":
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
        time.sleep(120)
        return "slept"
    deadline = time.time() + 60
    while not os.path.exists(pidfile) and time.time() < deadline:
        time.sleep(0.05)
    if what == "fail":
        raise ValueError("this run broke")
    return "returned"


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_every_result_is_handed_over_once():
    got = []
    run_in_processes(square, range(6), 2, got.append)
    assert sorted(got) == [0, 1, 4, 9, 16, 25]


def test_the_workers_share_the_cores_out_unless_omp_num_threads_says(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert [threads_per_worker(n) for n in (1, 2, 3, 16, 32)] == [16, 8, 5, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_worker(2) is None


def test_each_worker_computes_on_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    got = []
    run_in_processes(worker_threads, range(2), 2, got.append)
    assert got == [threads_per_worker(2)] * 2


def test_a_failed_call_stops_the_running_ones_without_waiting(tmp_path):
    pidfile = str(tmp_path / "sleeper.pid")
    got = []
    start = time.time()
    with pytest.raises(ValueError, match="this run broke"):
        run_in_processes(sleep_or_fail, [("sleep", pidfile), ("fail", pidfile), ("return", pidfile)], 2, got.append)
    assert time.time() - start < 60  # the sleeper would take 120 s
    assert "slept" not in got
    assert_gone(int(open(pidfile).read()))


def test_a_stopped_worker_ends_at_its_terminate_and_hands_back_nothing(tmp_path, capfd):
    """This module imports agwm.cli, as a grid's worker imports the command's script: a signal handler
    of the command's in the worker would print its line and hand the signal back as the call's
    result, and the worker would wait for the next call instead of ending."""
    pidfile = str(tmp_path / "sleeper.pid")
    with pytest.raises(ValueError, match="this run broke"):
        run_in_processes(sleep_or_fail, [("sleep", pidfile), ("fail", pidfile)], 2, print)
    assert_gone(int(open(pidfile).read()))
    assert "stopped by" not in capfd.readouterr().err


def test_a_signal_while_a_result_is_handed_over_stops_the_running_ones(tmp_path):
    pidfile = str(tmp_path / "sleeper.pid")
    got = []

    def record(result):
        got.append(result)
        raise Interrupted(signal.SIGTERM)  # what the grid's signal handler raises

    start = time.time()
    with pytest.raises(Interrupted):
        run_in_processes(sleep_or_fail, [("sleep", pidfile), ("return", pidfile)], 2, record)
    assert time.time() - start < 60
    assert got == ["returned"]
    assert_gone(int(open(pidfile).read()))
