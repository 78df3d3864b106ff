"""runtime/host.py: the machine's memory and CPUs as the runtime sizes its work by them, and run_parallel, the
thread pool the reader decodes frames with (its mutants survived the reader's tests: issue 19)."""

import os
import threading

import pytest

from edgepack.runtime import host
from edgepack.runtime.errors import TooLargeForDevice


def test_physical_memory_is_the_machines():
    assert host.physical_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_check_fits_refuses_more_than_memory():
    memory = host.physical_memory()
    host.check_fits("b", memory)
    with pytest.raises(TooLargeForDevice):
        host.check_fits("b", memory + 1)


def _where(threads, n=4):
    ran = []
    host.run_parallel([lambda i=i: ran.append((i, threading.get_ident())) for i in range(n)], threads)
    assert sorted(i for i, _ in ran) == list(range(n)), "every job runs once"
    return {ident for _, ident in ran}


def test_one_thread_runs_the_jobs_on_the_calling_thread():
    assert _where(1) == {threading.get_ident()}
    assert _where(0) == {threading.get_ident()}  # a count below one is one
    assert _where(5, n=1) == {threading.get_ident()}  # one job needs no pool


def test_several_threads_run_the_jobs_off_the_calling_thread():
    assert threading.get_ident() not in _where(2)


def test_no_more_threads_than_jobs(monkeypatch):
    started = []

    class Counted(threading.Thread):
        def start(self):
            started.append(self)
            super().start()

    monkeypatch.setattr(host.threading, "Thread", Counted)
    _where(8, n=3)
    assert len(started) == 3


def test_the_first_failing_job_in_order_is_raised_and_no_worker_dies(monkeypatch):
    crashed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    both = threading.Barrier(2)

    def failing(i):
        def job():
            both.wait(timeout=10)  # both jobs fail, the second one first
            if i == 0:
                threading.Event().wait(0.05)
            raise ValueError(f"job {i}")
        return job

    with pytest.raises(ValueError, match="job 0"):
        host.run_parallel([failing(0), failing(1)], 2)
    host.run_parallel([lambda: None] * 5, 2)
    assert crashed == []


def test_usable_cpus_is_this_process_affinity(monkeypatch):
    asked = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: asked.append(pid) or {3})
    assert host.usable_cpus() == 1 and asked == [0]


def test_usable_cpus_falls_back_to_the_cpu_count(monkeypatch):
    def no_affinity(pid):
        raise OSError("not here")

    monkeypatch.setattr(os, "sched_getaffinity", no_affinity)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert host.usable_cpus() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert host.usable_cpus() == 1


@pytest.mark.parametrize("cpus, threads", [(64, 8), (9, 8), (8, 8), (7, 7), (1, 1)])
def test_default_threads_are_the_cpus_up_to_eight(monkeypatch, cpus, threads):
    monkeypatch.setattr(host, "usable_cpus", lambda: cpus)
    assert host.default_threads() == threads
