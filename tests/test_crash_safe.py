"""A packager (or signer) killed with SIGKILL in the middle of writing a large bundle leaves the old file or
no file, never a partial one; the temporary file it leaves behind is never taken for a bundle."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edgepack
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle

import graphs

TESTS = str(Path(__file__).resolve().parent)
MB = 96  # of random weights: incompressible, so writing takes long enough to be caught in the middle
PACKAGE = """
import sys
sys.path.insert(0, sys.argv[2])
import edgepack, graphs
model, _ = graphs.mlp_bytes({mb})
print("writing", flush=True)
edgepack.package(model, output=sys.argv[1], level=1)
"""
SIGN = """
import sys
from edgepack.packager.sign import sign_bundle
print("writing", flush=True)
sign_bundle(sys.argv[1], sys.argv[2])
"""


def _kill_mid_write(target: Path, code: str, arg: str) -> Path:
    """Start `code` writing `target`; SIGKILL it once its temporary file holds 16 MB; return that file."""
    child = subprocess.Popen([sys.executable, "-c", code, str(target), arg], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            temps = list(target.parent.glob(f".{target.name}.*.tmp"))
            if temps and temps[0].stat().st_size > 16 * 2 ** 20:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                return temps[0]
            time.sleep(0.005)
        pytest.fail("the writer finished before it could be killed in the middle")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _not_a_bundle(temp: Path, error) -> None:
    assert temp.name.startswith(".") and temp.name.endswith(".tmp")  # hidden, and not named *.edgepack
    with pytest.raises(error):
        open_bundle(temp)


@pytest.mark.parametrize("old", [True, False], ids=["old file", "no file"])
def test_a_packager_killed_mid_write_leaves_the_old_file_or_none(tmp, old):
    target = tmp / "model.edgepack"
    if old:
        model, feeds = graphs.mlp()
        edgepack.package(model, output=target)
        before = target.read_bytes()
    temp = _kill_mid_write(target, PACKAGE.format(mb=MB), TESTS)
    if old:
        assert target.read_bytes() == before
        load(target).run(feeds)
    else:
        assert not target.exists()
    _not_a_bundle(temp, E.BadMagic)  # the header is written last: until then it is zeros
    assert sorted(p.name for p in tmp.glob("*.edgepack")) == (["model.edgepack"] if old else [])


def test_a_signer_killed_mid_rewrite_leaves_the_unsigned_bundle(tmp):
    from edgepack.packager.sign import keygen

    keys = keygen(tmp / "k")
    model, _ = graphs.mlp_bytes(MB)
    target = tmp / "model.edgepack"
    edgepack.package(model, output=target, level=1)
    before = target.read_bytes()
    temp = _kill_mid_write(target, SIGN, keys.private_path)
    assert target.read_bytes() == before
    with open_bundle(target) as b:
        assert b.signer is None
    _not_a_bundle(temp, E.TruncatedBundle)  # header first, then cut short: its declared size gives it away
