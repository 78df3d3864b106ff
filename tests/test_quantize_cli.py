"""`edgepack package --quantize ...` and `inspect` on its bundle: what a user sees."""

import subprocess
import sys

import onnx
import pytest

import quant_models

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def digits():
    return quant_models.digits_cnn()


def test_package_int8_static_prints_what_it_did_and_inspect_shows_it(digits, tmp):
    out = tmp / "q8.edgepack"
    # --recipe profile: the profile's QDQ format, whose node counts this test reads (measured, QOperator may win)
    r = cli("package", digits["model"], "-o", out, "--quantize", "int8-static", "--calibration",
            digits["calibration"], "--eval", digits["eval"], "--recipe", "profile")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"wrote {out}:")
    assert "quantized   int8-static: 6 weight nodes (Conv int8 4, Gemm int8 2), none of the targeted left fp32" \
        in r.stdout
    assert "200 calibration samples, minmax" in r.stdout
    assert "fidelity    on 450 held-out samples from test.npz" in r.stdout
    assert "logits: top-1 agreement" in r.stdout and "accuracy" in r.stdout and "cosine" in r.stdout
    assert "speed       " in r.stdout and "on this machine" in r.stdout
    assert "Collecting" not in r.stdout + r.stderr     # the quantizer's own chatter is kept quiet
    shown = cli("inspect", out)
    assert shown.returncode == 0, shown.stderr
    assert "quantized   int8-static: 6 weight nodes" in shown.stdout and "fidelity    on 450 held-out" in shown.stdout
    assert "steps       import, quantize, encode" in shown.stdout


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int8-static"], "int8-static needs calibration data"),
    (["--quantize", "int8-dynamic", "--op-types", "Conv,Foo"], "cannot quantize op types ['Foo']"),
    (["--quantize", "int8-dynamic", "--block-size", "64"], "block-size does not apply"),
    (["--quantize", "int4-weight", "--block-size", "24"], "block-size must be a power of two"),
])
def test_bad_options_one_line(args, message, tmp):
    model = tmp / "m.onnx"
    onnx.save(quant_models.constant_weights(), model)
    r = cli("package", model, "-o", tmp / "b.edgepack", *args)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("edgepack: error: ") and message in r.stderr
    assert not (tmp / "b.edgepack").exists()


def test_unknown_mode_is_a_usage_error(tmp):
    r = cli("package", tmp / "m.onnx", "-o", tmp / "b.edgepack", "--quantize", "int3")
    assert r.returncode == 2 and "int3" in r.stderr


def test_nothing_quantized_stops_or_warns(tmp):
    model = tmp / "m.onnx"
    onnx.save(quant_models.no_weights(), model)
    r = cli("package", model, "-o", tmp / "b.edgepack", "--quantize", "int8-dynamic")
    assert r.returncode == 1 and "quantized nothing" in r.stderr and "--allow-unquantized" in r.stderr
    r = cli("package", model, "-o", tmp / "b.edgepack", "--quantize", "int8-dynamic", "--allow-unquantized")
    assert r.returncode == 0, r.stderr
    assert "edgepack: warning: int8-dynamic quantized nothing" in r.stderr
    assert "fidelity    on 8 random inputs (give --eval DATA" in r.stdout


def test_demo_shows_an_int8_bundle_and_what_it_costs():
    from edgepack.packager.demo import run_demo

    result = run_demo()
    assert result.int8_samples == 350 and result.int8_bytes < 0.35 * result.model_bytes
    assert result.int8_baseline_accuracy - result.int8_accuracy <= 0.01
    line = next(line for line in result.lines() if line.startswith("  int8 "))
    assert "--quantize int8-static" in line and "calibration did not use" in line
