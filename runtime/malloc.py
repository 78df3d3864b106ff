"""Keep large allocations out of the heap, so that memory onnxruntime frees goes back to the system.

glibc serves allocations above a *dynamic* threshold from the heap, and raises that threshold each time a
large block is freed. During a session build onnxruntime allocates and frees many weight-sized blocks (it
frees each initializer once it has prepacked it); with the threshold raised they land in the heap, where
freed blocks between live ones cannot be returned, and peak RSS then depends on the order of earlier
allocations (measured: the same plain onnxruntime load of a 50 MB model peaked anywhere between 113 and
154 MB depending on which Python modules had been imported first). Pinning the threshold makes every
block of 128 KiB or more its own mapping, returned to the system when freed.

This is process-wide. load() applies it once unless called with tune_malloc=False; it does nothing on C
libraries other than glibc. benchmarks/memory.py measures plain onnxruntime both with and without it.
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_applied = False


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (disabling its dynamic growth). Returns whether it was applied."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library (ctypes.util costs 1.5 MB)
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    return _applied
