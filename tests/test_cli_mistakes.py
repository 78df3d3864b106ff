"""The mistakes real users make on the command line, each answered by one line and exit 1 before any work:
an output folder that does not exist, -o naming the input, a text file named .npz; and what they need:
--shape, --timeout, inspect's inputs and outputs, export, onnxruntime's log kept off the terminal."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

import graphs
import real_exporters as rx

pytestmark = pytest.mark.packager

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, timeout=300)


def one_line_error(r, code=1) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr and len([ln for ln in lines if ln.startswith("edgepack: error:")]) == 1, \
        r.stderr
    assert not any("onnxruntime:" in ln and ln.startswith(("20", "\x1b")) for ln in lines), r.stderr
    return next(ln for ln in lines if ln.startswith("edgepack: error:"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A detector-like model with symbolic sizes, its bundle, and a Paddle-style model with its bundle."""
    tmp = tmp_path_factory.mktemp("mistakes")
    det, feeds = rx.detector()
    onnx.save(det, tmp / "det.onnx")
    np.savez(tmp / "det_feeds.npz", **feeds)
    paddle, pfeeds = rx.paddle_cnn()
    onnx.save(paddle, tmp / "paddle.onnx")
    np.savez(tmp / "paddle_calib.npz", x=np.random.default_rng(0).random((4, 3, 16, 24), dtype=np.float32))
    import edgepack

    edgepack.package(str(tmp / "det.onnx"), tmp / "det.edgepack")
    edgepack.package(str(tmp / "paddle.onnx"), tmp / "paddle.edgepack", quantize="int8-static",
                     calibration=str(tmp / "paddle_calib.npz"))
    return tmp


@pytest.mark.parametrize("command", [
    "package {t}/det.onnx -o {t}/nope/x.edgepack --quantize int8-dynamic",
    "run {t}/paddle.edgepack --output {t}/nope/o.npz",
    "report {t}/paddle.edgepack -o {t}/nope/r.html --no-measure",
    "keygen {t}/nope/k.key",
    "sign {t}/nope/b.edgepack --key {t}/k.key",
    "export {t}/paddle.edgepack -o {t}/nope/m.onnx",
])
def test_a_missing_output_folder_is_one_line_and_exit_1_at_once(files, command):
    start = time.monotonic()
    r = cli(*command.format(t=files).split())
    line = one_line_error(r)
    assert "nope" in line and ("does not exist" in line or "no such bundle" in line)
    assert time.monotonic() - start < 30  # the work never starts (the bar, 5 s, is met on an idle machine)


def test_the_api_checks_the_output_before_reading_the_model(tmp):
    import edgepack
    from edgepack.runtime.errors import OptionError

    with pytest.raises(OptionError, match="does not exist"):
        edgepack.package(str(tmp / "no-such-model.onnx"), tmp / "nope" / "x.edgepack")
    with pytest.raises(OptionError, match="is a folder"):
        edgepack.package(str(tmp / "no-such-model.onnx"), tmp)


def test_output_naming_the_input_is_refused_and_the_input_untouched(files, tmp):
    model = tmp / "m.onnx"
    model.write_bytes((files / "det.onnx").read_bytes())
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    os.symlink(model, tmp / "link.onnx")
    os.link(model, tmp / "hard.onnx")
    for out in (model, tmp / "link.onnx", tmp / "hard.onnx"):
        line = one_line_error(cli("package", model, "-o", out))
        assert "is the input" in line
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before
    bundle = tmp / "b.edgepack"
    bundle.write_bytes((files / "det.edgepack").read_bytes())
    assert "is the input" in one_line_error(cli("report", bundle, "-o", bundle, "--no-measure"))
    assert "is the input" in one_line_error(cli("export", bundle, "-o", bundle))
    feeds = tmp / "f.npz"
    feeds.write_bytes((files / "det_feeds.npz").read_bytes())
    assert "is the input" in one_line_error(cli("run", bundle, "--inputs", feeds, "--output", feeds))


def test_a_text_file_named_npz_is_not_an_npz_archive(files, tmp):
    (tmp / "text.npz").write_text("x,y\n1,2\n")
    np.save(tmp / "lone.npy", np.zeros(3))
    os.rename(tmp / "lone.npy", tmp / "lone.npz")
    assert "not an .npz archive" in one_line_error(cli("run", files / "det.edgepack", "--inputs", tmp / "text.npz"))
    assert "single .npy array" in one_line_error(cli("run", files / "det.edgepack", "--inputs", tmp / "lone.npz"))
    line = one_line_error(cli("package", files / "paddle.onnx", "-o", tmp / "p.edgepack", "--quantize",
                              "int8-static", "--calibration", tmp / "text.npz"))
    assert "not an .npz archive" in line and "allow_pickle" not in line


def test_run_on_unknown_sizes_names_the_input_and_keeps_onnxruntime_quiet(files):
    line = one_line_error(cli("run", files / "det.edgepack"))
    assert "shape of x [batch, 3, height, width] is not known" in line and "--shape x=1,3,HEIGHT,WIDTH" in line
    r = cli("run", files / "det.edgepack", "--shape", "x=1,3,8,8")
    assert r.returncode == 0, r.stderr
    assert "y: float32[1, 4, 6, 6]" in r.stdout
    assert "--shape" in one_line_error(cli("run", files / "det.edgepack", "--shape", "x=1,3"), code=1)
    assert "not an input" in one_line_error(cli("run", files / "det.edgepack", "--shape", "z=1,3"))


def test_run_measure_and_report_use_the_recorded_shapes(files, tmp):
    r = cli("run", files / "paddle.edgepack")
    assert r.returncode == 0 and "x[1, 3, 16, 24]" in r.stderr, r.stderr
    r = cli("measure", files / "det.edgepack", "--runs", "1", "--shape", "x=1,3,8,8", "--json")
    assert r.returncode == 0, r.stderr
    assert "shape of x" in one_line_error(cli("measure", files / "det.edgepack", "--runs", "1"))
    r = cli("report", files / "det.edgepack", "-o", tmp / "r.json", "--runs", "1", "--shape", "x=1,3,8,8")
    assert r.returncode == 0, r.stderr
    assert "skipped" not in json.loads((tmp / "r.json").read_text()).get("measured", {})


def test_run_timeout(files):
    r = cli("run", files / "paddle.edgepack", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert cli("run", files / "paddle.edgepack", "--timeout", "0").returncode == 2  # a usage error


def test_run_timeout_stops_an_endless_model(tmp):
    import edgepack

    model, feeds = graphs.subgraphs()
    trips = next(t for t in model.graph.initializer if t.name == "trips")
    trips.raw_data = np.array(2 ** 63 - 1, np.int64).tobytes()
    edgepack.package(model, output=tmp / "loop.edgepack")
    np.savez(tmp / "feeds.npz", **feeds)
    line = one_line_error(cli("run", tmp / "loop.edgepack", "--inputs", tmp / "feeds.npz", "--timeout", "0.5"))
    assert "longer than 0.5 s" in line


def test_inspect_shows_inputs_and_outputs(files):
    r = cli("inspect", files / "det.edgepack")
    assert r.returncode == 0, r.stderr
    assert "input       x: float32 [batch, 3, height, width]" in r.stdout
    assert "output      y: float32 [batch, 4, h2, w2]" in r.stdout
    d = json.loads(cli("inspect", files / "paddle.edgepack", "--json").stdout)
    assert d["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["?", 3, "?", "?"]}]
    assert d["outputs"] == [{"name": "probs", "dtype": "float32", "shape": ["?", 3]}]


def test_export_writes_the_model_the_runtime_runs(files, tmp):
    from edgepack.packager.export import export_model
    from edgepack.runtime import load, open_bundle
    from edgepack.runtime.ortconfig import session_options
    import onnxruntime as ort

    r = cli("export", files / "paddle.edgepack", "-o", tmp / "m.onnx")
    assert r.returncode == 0 and "wrote" in r.stdout, r.stderr
    exported = onnx.load(tmp / "m.onnx")
    with open_bundle(files / "paddle.edgepack") as b:
        for t in exported.graph.initializer:
            if t.raw_data and t.name in {e.name for e in b.manifest.tensors}:
                assert t.raw_data == bytes(b.read_blob(b.manifest.tensor(t.name)))
    session = load(files / "paddle.edgepack")
    feeds = {"x": np.random.default_rng(3).random((1, 3, 16, 24), dtype=np.float32)}
    plain = ort.InferenceSession(str(tmp / "m.onnx"), session_options(session.profile),
                                 providers=["CPUExecutionProvider"])
    assert np.array_equal(plain.run(None, feeds)[0], session.run(feeds)["probs"])
    done = export_model(files / "det.edgepack", tmp / "d.onnx")
    original = onnx.load(files / "det.onnx")
    assert {t.name: t.raw_data for t in onnx.load(done.path).graph.initializer} == \
        {t.name: t.raw_data for t in original.graph.initializer}
