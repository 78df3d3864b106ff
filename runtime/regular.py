"""Open a bundle path as a regular file, or refuse it before reading a byte.

A bundle is read with positional reads of a known size, so only a regular file makes sense: a directory
cannot be read, a FIFO or a character device blocks or never ends, and /proc and /sys files lie about their
size (`/proc/self/mem` says 0 and fails to read). The file is opened with O_NONBLOCK, so that opening a FIFO
with no writer returns at once, and checked with fstat on the descriptor that is then read, so that a path
swapped between the check and the open cannot slip through.
"""

from __future__ import annotations

import os
import stat

from .errors import NotARegularFile

# Pseudo file systems whose regular-looking files are not data: their sizes are 0 or made up, and reading them
# can block or fail. (Devices elsewhere, /dev included, are refused by their file type.)
PSEUDO_ROOTS = ("/proc", "/sys")

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR,
          "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind(mode: int) -> str:
    """What a non-regular st_mode is, in words."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def pseudo_root(path: str) -> str | None:
    """The pseudo file system (/proc, /sys) that `path` resolves into, or None."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    for root in PSEUDO_ROOTS:
        if real == root or real.startswith(root + "/"):
            return root
    return None


def open_regular(path: str) -> int:
    """A read-only descriptor on `path`, which must be a regular file outside /proc and /sys.
    Raises NotARegularFile (or OSError from os.open, for the caller to word) without reading anything."""
    root = pseudo_root(path)
    if root is not None:
        raise NotARegularFile(path, f"a file under {root}, not a bundle")
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, kind(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file never blocks; reads behave as without the flag
    except BaseException:
        os.close(fd)
        raise
    return fd
