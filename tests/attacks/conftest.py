"""Fixtures for the attack tests: one small valid bundle to take apart, and a key pair."""

import pytest

import edgepack
import graphs


@pytest.fixture(scope="session")
def mlp_bundle(tmp_path_factory):
    """(bytes, feeds) of a small valid bundle: three MatMul + Add layers, zstd and raw tensors."""
    model, feeds = graphs.mlp(hidden=(64, 64))
    path = tmp_path_factory.mktemp("attack") / "mlp.edgepack"
    edgepack.package(model, output=path)
    return path.read_bytes(), feeds


@pytest.fixture(scope="session")
def keypair(tmp_path_factory):
    from edgepack.packager.sign import keygen

    return keygen(tmp_path_factory.mktemp("keys") / "key")


def write(folder, data: bytes, name: str = "attack.edgepack"):
    path = folder / name
    path.write_bytes(data)
    return path


def child_peak_mb(code: str) -> float:
    """Run `code` in a fresh interpreter (it prints nothing); return the child's peak RSS in MB."""
    import subprocess
    import sys

    from rss import PEAK_MB_CODE

    wrapper = code + "\nimport resource\n" + PEAK_MB_CODE + "\nprint(peak_mb())"
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


def peak_mb_refusing(call: str, error: str) -> float:
    """Peak RSS (MB) of a fresh process in which `call` (code) raises the edgepack error named `error`."""
    return child_peak_mb(f"""
import edgepack.runtime as rt
try:
    {call}
except rt.{error}:
    pass
else:
    raise SystemExit("no {error}")
""")
