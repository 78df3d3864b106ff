"""The CLI: each command works, and bad input gets one line, no traceback, and a non-zero exit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args, cwd=None):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def model_file(mlp_files):
    """The folder holding m.onnx (graphs.mlp()) and feeds.npz, shared with other test modules."""
    return mlp_files[0]


@pytest.fixture(scope="module")
def bundle(model_file):
    r = cli("package", model_file / "m.onnx", "-o", model_file / "cli.edgepack")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    return model_file / "cli.edgepack"


def test_run_with_inputs_writes_outputs(bundle, model_file, tmp):
    out = tmp / "out.npz"
    r = cli("run", bundle, "--inputs", model_file / "feeds.npz", "--output", out)
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort
    feeds = dict(np.load(model_file / "feeds.npz"))
    ref = ort.InferenceSession(str(model_file / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.array_equal(np.load(out)["a2"], ref)


def test_run_without_inputs_says_random(bundle):
    r = cli("run", bundle)
    assert r.returncode == 0, r.stderr
    assert "random inputs" in r.stderr and "a2: float32[1, 10]" in r.stdout


def test_inspect_json_decodes_nothing(bundle):
    r = cli("inspect", bundle, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["bundle_bytes"] == os.path.getsize(bundle)
    assert s["manifest"]["target"]["name"] in ("generic-x86-64", "generic-aarch64")
    assert {t["name"] for t in s["manifest"]["tensors"]} == {"w0", "b0", "w1", "b1", "w2", "b2"}
    assert s["manifest"]["provenance"]["steps"][0]["name"] == "import"


def test_inspect_text(bundle):
    r = cli("inspect", bundle)
    assert r.returncode == 0 and "w0" in r.stdout and "target" in r.stdout


def test_verify_ok(bundle):
    r = cli("verify", bundle)
    assert r.returncode == 0 and r.stdout.startswith("ok:")


def test_targets_lists_and_shows():
    r = cli("targets")
    assert r.returncode == 0 and "generic-x86-64" in r.stdout and "generic-aarch64" in r.stdout
    r = cli("targets", "show", "generic-aarch64")
    assert json.loads(r.stdout)["device"]["architecture"] == "aarch64"


def _one_line_error(r, code=1):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (("run", "missing.edgepack"), "cannot open"),
    (("inspect", "{m}"), "not an edgepack bundle"),
    (("verify", "{trunc}"), "truncated"),
    (("package", "missing.onnx", "-o", "x.edgepack"), "no such model file"),
    (("package", "{m}", "-o", "x.edgepack", "--target", "toaster"), "unknown target 'toaster'"),
    (("run", "{b}", "--inputs", "{m}"), "cannot read inputs"),
    (("targets", "show", "nope"), "unknown target"),
])
def test_bad_input_one_line(bundle, model_file, tmp, args, expected):
    trunc = tmp / "t.edgepack"
    trunc.write_bytes(bundle.read_bytes()[:500])
    args = [a.format(m=model_file / "m.onnx", b=bundle, trunc=trunc) for a in args]
    line = _one_line_error(cli(*args, cwd=tmp))
    assert line.startswith("edgepack: error:") and expected in line


def test_corrupt_bundle_run_and_verify_fail_cleanly(bundle, model_file, tmp):
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0x5A
    bad = tmp / "bad.edgepack"
    bad.write_bytes(bytes(data))
    for cmd in (("verify", bad), ("run", bad, "--inputs", model_file / "feeds.npz")):
        _one_line_error(cli(*cmd))


def test_wrong_feeds_are_an_input_error(bundle, tmp):
    np.savez(tmp / "wrong.npz", y=np.zeros((1, 64), np.float32))
    line = _one_line_error(cli("run", bundle, "--inputs", tmp / "wrong.npz"))
    assert "missing ['x']" in line


def test_usage_error_exits_2():
    r = cli("package")
    assert r.returncode == 2


def test_demo():
    r = cli("demo")
    assert r.returncode == 0, r.stderr
    assert "bit-identical" in r.stdout and "accuracy" in r.stdout and "peak RSS" in r.stdout
    acc = float(r.stdout.split("accuracy")[1].split("%")[0])
    assert acc > 95.0
