"""Pruning through package() and the CLI: provenance, report, inspect, the bundle runs, bytes fall."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import edgepack
import prune_graphs as pg
from edgepack.runtime import load, open_bundle
from edgepack.runtime.errors import OptionError

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune_pkg")
    model, feeds = pg.residual_block()
    onnx.save(model, d / "m.onnx")
    np.savez(d / "calib.npz", x=np.random.default_rng(3).standard_normal((40, 3, 8, 8)).astype(np.float32))
    return d, feeds


def test_package_records_the_step_and_the_report(residual):
    d, feeds = residual
    result = edgepack.package(d / "m.onnx", output=d / "p.edgepack", prune="channels:0.5", prune_scope="global",
                              reconstruct=True, calibration=d / "calib.npz")
    with open_bundle(d / "p.edgepack") as b:
        prov, report = b.manifest.raw["provenance"], b.manifest.raw["report"]["prune"]
    assert [s["name"] for s in prov["steps"]] == ["import", "prune", "encode"]
    options = prov["steps"][1]["options"]
    assert (options["method"], options["ratio"], options["scope"], options["reconstruct"],
            options["calibration_samples"]) == ("channels", 0.5, "global", True, 40)
    assert report == result.report["prune"]
    assert report["params"]["after"] < report["params"]["before"]
    assert [layer["name"] for layer in report["layers"]] == [n.name for n in onnx.load(d / "m.onnx").graph.node
                                                             if n.op_type == "Conv"]
    assert report["fidelity"]["samples"] == 40 and len(report["refits"]) == 3
    out = load(d / "p.edgepack").run(feeds)
    assert next(iter(out.values())).shape == (3, 5)


def test_unstructured_zeroes_weights_and_the_bundle_shrinks(residual):
    d, feeds = residual
    plain = edgepack.package(d / "m.onnx", output=d / "u0.edgepack")
    result = edgepack.package(d / "m.onnx", output=d / "u.edgepack", prune="unstructured:0.6")
    report = result.report["prune"]
    conv_weights = sum(x["params"] for x in report["zeroed"])
    assert report["zeros"]["after"] - report["zeros"]["before"] >= 0.59 * conv_weights
    assert report["params"]["after"] == report["params"]["before"]
    assert result.bundle_bytes < 0.8 * plain.bundle_bytes
    with open_bundle(d / "u.edgepack") as b:
        w = b.tensor(report["zeroed"][1]["weight"])
    assert abs((w == 0).mean() - 0.6) < 0.01


def test_reconstruct_without_calibration_is_an_error(residual):
    d, _ = residual
    with pytest.raises(OptionError, match="--reconstruct needs calibration data: give --calibration DATA"):
        edgepack.package(d / "m.onnx", output=d / "x.edgepack", prune="channels:0.3", reconstruct=True)
    assert not os.path.exists(d / "x.edgepack")


def test_calibration_with_wrong_inputs_is_an_error(residual, tmp_path):
    d, _ = residual
    np.savez(tmp_path / "bad.npz", image=np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(OptionError, match=r"the model's inputs are \['x'\]"):
        edgepack.package(d / "m.onnx", output=tmp_path / "x.edgepack", prune="channels:0.3",
                         prune_criterion="activation", calibration=tmp_path / "bad.npz")


def test_cli_prune_reconstruct_and_inspect(digits_cnn, tmp_path):
    np.savez(tmp_path / "calib.npz", x=digits_cnn["calib"])
    full, pruned = tmp_path / "full.edgepack", tmp_path / "p.edgepack"
    r = cli("package", digits_cnn["path"], "-o", pruned, "--prune", "channels:0.3", "--reconstruct",
            "--calibration", tmp_path / "calib.npz")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pruned channels:0.3 (layer, l1, reconstructed): params ")
    assert "top-1 agreement" in r.stdout and "left alone: 10/10 channels" in r.stdout
    assert cli("package", digits_cnn["path"], "-o", full).returncode == 0
    # weights dominate the bundle, so its bytes follow the parameters down
    assert os.path.getsize(pruned) <= 0.75 * os.path.getsize(full)
    r = cli("inspect", pruned)
    assert r.returncode == 0 and "steps       import, prune, encode" in r.stdout
    assert "[64, 32, 3, 3]   -> [45, 22, 3, 3]" in r.stdout
    logits = load(pruned).run({"x": digits_cnn["x"]})["logits"]
    assert (logits.argmax(1) == digits_cnn["y"]).mean() > 0.95
    r = cli("inspect", pruned, "--json")
    assert json.loads(r.stdout)["manifest"]["report"]["prune"]["ratio"] == 0.3


@pytest.mark.parametrize("args, message", [
    (["--reconstruct"], "edgepack: error: --reconstruct needs --prune METHOD:RATIO"),
    (["--prune", "channels:0.3", "--prune-criterion", "activation"],
     "edgepack: error: --prune-criterion activation needs calibration data"),
    (["--prune", "channels"], "edgepack: error: --prune 'channels': give METHOD:RATIO"),
])
def test_cli_errors_are_one_line(residual, args, message):
    d, _ = residual
    r = cli("package", d / "m.onnx", "-o", d / "e.edgepack", *args)
    assert r.returncode == 1 and r.stderr.startswith(message) and r.stderr.count("\n") == 1


@pytest.mark.parametrize("method", ["channels", "unstructured"])
def test_pruning_a_model_without_weights_says_so(method, tmp_path):
    """Nothing to prune is said in the report and on the CLI, as a GRU's weights are ("not pruned: ..."),
    not left to `params 0 -> 0` (a new user's finding)."""
    import quant_models

    model = tmp_path / "nw.onnx"
    onnx.save(quant_models.no_weights(), model)
    out = tmp_path / "nw.edgepack"
    r = subprocess.run([sys.executable, "-m", "edgepack.cli", "package", str(model), "-o", str(out), "--prune",
                        f"{method}:0.3"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "not pruned: the model has no weights to prune" in r.stdout, r.stdout
    with open_bundle(out) as b:
        assert b.manifest.raw["report"]["prune"]["not_pruned"] == "the model has no weights to prune"


def test_a_ratio_that_removes_no_channel_says_so():
    from edgepack.packager.prune import prune_model

    model, _ = pg.residual_block()
    report = prune_model(model, "channels:0.01").report
    assert report["units"]["removed"] == 0 and "removes none of the" in report["not_pruned"]
