"""Finding 5 of issue 19: paths that are not regular files. A directory raised IsADirectoryError, /proc/self/mem
an OSError, and a FIFO blocked open_bundle and load for ever. Each is now a NotARegularFile, raised before a
byte is read, and `edgepack verify /proc/self/mem` prints one line and exits 1."""

import os
import subprocess
import sys

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import inspect, load, open_bundle
from edgepack.runtime.regular import open_regular

from conftest import write

READERS = {"open_bundle": open_bundle, "load": load, "inspect": inspect}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_directory_is_refused(tmp, reader):
    with pytest.raises(E.NotARegularFile, match="it is a directory"):
        READERS[reader](tmp)


@pytest.mark.parametrize("path", ["/proc/self/mem", "/proc/self/status", "/proc/self/pagemap",
                                  "/sys/kernel/mm/transparent_hugepage/enabled"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_proc_and_sys_files_are_refused(path, reader):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(E.NotARegularFile, match="not a bundle file"):
        READERS[reader](path)


def test_a_link_into_proc_is_refused(tmp):
    link = tmp / "model.edgepack"
    os.symlink("/proc/self/mem", link)
    with pytest.raises(E.NotARegularFile, match="under /proc"):
        open_bundle(link)


def test_a_character_device_is_refused():
    with pytest.raises(E.NotARegularFile, match="a character device"):
        open_bundle("/dev/null")


def test_a_regular_file_still_opens(tmp, mlp_bundle):
    path = write(tmp, mlp_bundle[0])
    fd = open_regular(str(path))
    try:
        assert os.get_blocking(fd)
        assert os.pread(fd, 8, 0) == mlp_bundle[0][:8]
    finally:
        os.close(fd)
    with open_bundle(path) as b:
        assert b.verify() == []


_FIFO = """
import sys
import edgepack.runtime as rt
try:
    getattr(rt, sys.argv[2])(sys.argv[1])
except rt.NotARegularFile as e:
    print("refused:", e)
"""


@pytest.mark.parametrize("reader", ["open_bundle", "load", "inspect"])
def test_a_fifo_is_refused_without_blocking(tmp, reader):
    """In a child with a deadline: on the old code the open waited for a writer that never comes."""
    fifo = tmp / "model.edgepack"
    os.mkfifo(fifo)
    try:
        out = subprocess.run([sys.executable, "-c", _FIFO, str(fifo), reader], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader} blocked on a FIFO")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused:" in out.stdout and "a FIFO" in out.stdout


@pytest.mark.parametrize("args", [["verify", "/proc/self/mem"], ["inspect", "/proc/self/mem"],
                                  ["verify", "/dev/zero"], ["run", "/proc/self/mem"]])
def test_the_cli_says_one_line_and_exits_1(args):
    out = subprocess.run([sys.executable, "-m", "edgepack.cli", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("edgepack: error: "), out.stderr
    assert "not a bundle file" in out.stderr
