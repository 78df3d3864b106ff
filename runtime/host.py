"""This host's resources as the runtime sees them: memory, the CPUs this process may use, decode threads, and a
small thread pool. The reader, the session, the mapped layout and the packager all size their work from here."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from .errors import TooLargeForDevice


def physical_memory() -> int | None:
    """Bytes of RAM this machine has, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(path: str, size: int) -> None:
    """Refuse, before allocating, to decode more bytes than this machine has memory."""
    memory = physical_memory()
    if memory is not None and size > memory:
        raise TooLargeForDevice(path, size, memory)


def run_parallel(jobs: list[Callable[[], None]], threads: int) -> None:
    """Run jobs on up to `threads` threads; the first exception (in job order) is re-raised."""
    threads = max(1, min(threads, len(jobs)))
    if threads == 1:
        for job in jobs:
            job()
        return
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()
    queue = iter(enumerate(jobs))

    def worker() -> None:
        while True:
            with lock:
                item = next(queue, None) if not errors else None
            if item is None:
                return
            i, job = item
            try:
                job()
            except BaseException as e:
                with lock:
                    errors.append((i, e))

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]


def usable_cpus() -> int:
    """The CPUs this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Decode threads: the CPUs this process may use, at most 8."""
    return min(8, usable_cpus())
