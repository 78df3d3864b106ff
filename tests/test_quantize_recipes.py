"""int8-static's format, measured on the packaging host when it runs the target's kernels, else the profile's
default with a plain statement that latency was not measured (quantize.recipes)."""

import subprocess
import sys

import pytest

import edgepack
from edgepack.packager.quantize.recipes import host_runs
from edgepack.runtime.profile import load_profile

import quant_models

pytestmark = pytest.mark.packager


@pytest.fixture(scope="module")
def digits():
    return quant_models.digits_cnn()


@pytest.fixture(scope="module")
def measured(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "m.edgepack"
    return out, edgepack.package(digits["model"], str(out), quantize="int8-static",
                                 calibration=digits["calibration"], eval_data=digits["eval"],
                                 quantize_options={"calibration_samples": 32})


def test_candidates_measured_against_fp32_and_the_fastest_within_tolerance_kept(measured):
    assert host_runs(load_profile("generic-x86-64")) is None   # this x86 host runs the generic profile's kernels
    out, result = measured
    q = result.report["quantization"]
    names = [c["name"] for c in q["candidates"]]
    assert {"S8S8 QDQ per-channel", "U8S8 QDQ per-channel", "U8S8 QOperator per-channel"} <= set(names)
    ok = [c for c in q["candidates"] if "p50_ms" in c and not c["misses"]]
    chosen = [c for c in q["candidates"] if c.get("chosen")]
    assert len(chosen) == 1 and chosen[0] in ok and q["recipe"]["latency_measured"]
    fastest = min(ok, key=lambda c: c["p50_ms"])
    if q["recipe"]["by"] == "measured":
        assert chosen[0] is fastest
    else:   # the fastest was within the noise margin of the profile's default, which was kept: the record says so
        assert q["recipe"]["by"] == "profile default kept" and q["recipe"]["fastest"] == fastest["name"]
        assert chosen[0]["name"] == q["recipe"]["profile_default"]
        assert fastest["p50_ms"] > chosen[0]["p50_ms"] * (1 - q["recipe"]["margin"])
    for c in q["candidates"]:
        assert c["activation_type"] in ("int8", "uint8") and c["weight_type"] == "int8"
        assert c["ratio"] > 0 and c["fidelity"]["cosine"] > 0.9 and c["fidelity"]["agreement"] > 0.9
    # the bundle's own report keeps them, for `edgepack report`
    from edgepack.runtime import open_bundle

    with open_bundle(str(out)) as b:
        assert b.manifest.raw["report"]["quantization"]["candidates"] == q["candidates"]
    steps = {s["name"]: s for s in b.manifest.raw["provenance"]["steps"]}
    assert steps["quantize"]["options"]["activation_type"] == chosen[0]["activation_type"]


def test_html_report_has_the_candidates_table(measured, tmp):
    out, _ = measured
    from edgepack.packager.report import write_report

    text = write_report(str(out), str(tmp / "r.html"), "html", measure=False)
    assert "int8 format, measured" in text and "U8S8 QOperator per-channel" in text and "p50 ms" in text


def test_explicit_format_narrows_the_candidates(digits, tmp):
    result = edgepack.package(digits["model"], str(tmp / "u.edgepack"), quantize="int8-static",
                              calibration=digits["calibration"],
                              quantize_options={"calibration_samples": 16, "activation_type": "uint8"})
    q = result.report["quantization"]
    assert q["candidates"] and all(c["activation_type"] == "uint8" for c in q["candidates"])


def test_cross_packaging_takes_the_profile_default_and_says_latency_was_not_measured(digits, tmp):
    out = tmp / "pi.edgepack"
    r = subprocess.run([sys.executable, "-m", "edgepack.cli", "package", digits["model"], "-o", str(out),
                        "--target", "raspberry-pi-4", "--quantize", "int8-static", "--calibration",
                        digits["calibration"], "--calibration-samples", "16"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "latency NOT measured for this target: this host is x86_64, the target aarch64" in r.stdout
    assert "latency was not measured for raspberry-pi-4" in r.stderr and "S8S8 QDQ per-channel" in r.stderr
    from edgepack.runtime import open_bundle

    with open_bundle(str(out)) as b:
        q = b.manifest.raw["report"]["quantization"]
    assert "candidates" not in q and q["recipe"]["latency_measured"] is False
    assert q["recipe"]["source"].startswith("quantization: S8S8 QDQ per channel")


def test_a_convolution_network_is_also_measured_with_its_activations_quantized(measured):
    """The wide candidate: the CNN's Relu, Add and MaxPool quantized too, so that tensors stay 8-bit between
    convolutions; it is a candidate like the others, judged by the same tolerance."""
    _, result = measured
    q = result.report["quantization"]
    wide = [c for c in q["candidates"] if c["name"].endswith("+activations")]
    assert len(wide) == 1 and "p50_ms" in wide[0]
    assert set(wide[0]["op_types"]) == {"Conv", "MatMul", "Gemm", "Relu", "Add", "MaxPool"}
    assert all(set(c["op_types"]) == {"Conv", "MatMul", "Gemm"} for c in q["candidates"] if c not in wide)


def test_wide_op_types_only_for_convolution_networks():
    from onnx import TensorProto, helper

    from edgepack.packager.quantize.recipes import wide_op_types

    def graph(*ops):
        nodes = [helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(ops)]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [])
        return helper.make_model(g)

    default = ("Conv", "MatMul", "Gemm")
    assert wide_op_types(graph("Conv", "Sigmoid", "Mul", "Concat", "Softmax"), default) == \
        default + ("Concat", "Mul", "Sigmoid")
    assert wide_op_types(graph("MatMul", "Add", "Relu"), default) is None   # a transformer or an MLP: no Conv
    assert wide_op_types(graph("Conv", "Flatten"), default) is None         # nothing to add
    assert wide_op_types(graph("Conv", "Relu"), ("MatMul",)) is None        # the user left Conv out
