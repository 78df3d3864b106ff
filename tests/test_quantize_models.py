"""Quantization on real models: a CNN trained here on scikit-learn's digits, a small transformer decoder.
The accuracy figures are measured on held-out data, the sizes on the bundle files."""

import os

import numpy as np
import onnxruntime as ort
import pytest

import edgepack
from edgepack.runtime import load

import quant_models


@pytest.fixture(scope="module")
def digits():
    d = quant_models.digits_cnn()
    assert d["torch_accuracy"] >= 0.95
    return d


@pytest.fixture(scope="module")
def decoder():
    d = quant_models.tiny_decoder()
    assert d["weight_bytes"] >= 15 * 10**6
    return d


def _accuracy(logits, labels):
    return float((logits.argmax(-1) == labels).mean())


def test_digits_int8_static_keeps_accuracy_at_a_quarter_of_the_size(digits, tmp):
    out = tmp / "q8.edgepack"
    # recipe "profile": the profile's QDQ format, whose node counts are asserted below; the measured choice
    # between formats is tested in test_quantize_recipes.py
    result = edgepack.package(digits["model"], str(out), quantize="int8-static", calibration=digits["calibration"],
                              eval_data=digits["eval"], quantize_options={"recipe": "profile"})
    test = np.load(digits["eval"])
    ref = ort.InferenceSession(digits["model"], providers=["CPUExecutionProvider"]).run(None, {"x": test["x"]})[0]
    logits = load(out).run({"x": test["x"]})["logits"]   # dynamic batch: the whole split at once
    drop = _accuracy(ref, test["labels"]) - _accuracy(logits, test["labels"])
    ratio = os.path.getsize(out) / os.path.getsize(digits["model"])
    print(f"digits int8-static: accuracy drop {100 * drop:.2f} pt, bundle {ratio:.3f}x the fp32 .onnx")
    assert drop <= 0.01 and ratio <= 0.25
    q = result.report["quantization"]
    assert q["quantized"] == {"Conv int8": 4, "Gemm int8": 2} and q["calibration_samples"] == 200
    # the report measured the same thing on the same data (batch of one per sample)
    m = result.report["fidelity"]["outputs"]["logits"]
    assert result.report["fidelity"]["held_out"] and result.report["fidelity"]["samples"] == len(test["labels"])
    assert abs((m["reference_accuracy"] - m["accuracy"]) - drop) < 1e-6   # the report keeps 6 significant digits
    assert m["top1_agreement"] >= 0.98 and m["cosine_mean"] > 0.99


def test_bundle_is_deterministic(digits, tmp):
    # recipe "profile": measured formats (the default on a matching host) record timings, which differ per run
    kw = dict(quantize="int8-static", calibration=digits["calibration"], eval_data=digits["eval"],
              quantize_options={"recipe": "profile"})
    edgepack.package(digits["model"], str(tmp / "a.edgepack"), **kw)
    edgepack.package(digits["model"], str(tmp / "b.edgepack"), **kw)
    assert (tmp / "a.edgepack").read_bytes() == (tmp / "b.edgepack").read_bytes()


@pytest.mark.parametrize("kw", [{"method": "entropy"}, {"method": "percentile"}, {"format": "qoperator"},
                                {"per_channel": False, "reduce_range": False}])
def test_digits_int8_static_variants(digits, tmp, kw):
    out = tmp / "q8.edgepack"
    result = edgepack.package(digits["model"], str(out), quantize="int8-static", calibration=digits["calibration"],
                              eval_data=digits["eval"], quantize_options={"calibration_samples": 64, **kw})
    m = result.report["fidelity"]["outputs"]["logits"]
    assert m["reference_accuracy"] - m["accuracy"] <= 0.02
    assert result.report["quantization"]["quantized_total"] == 6
    if kw.get("format") == "qoperator":
        assert result.report["quantization"]["ops"].get("QLinearConv") == 4


def test_dynamic_batch_model_calibrated_with_batch_one_samples(digits, tmp):
    # the calibration .npz holds samples along the first axis; each is fed as a batch of one, and so is a
    # folder of complete feeds; the model's batch dimension is dynamic ("N")
    folder = tmp / "feeds"
    folder.mkdir()
    x = np.load(digits["calibration"])["x"]
    for i in range(32):
        np.savez(folder / f"{i:03}.npz", x=x[i:i + 1])
    for calibration in (digits["calibration"], str(folder)):
        out = tmp / "q8.edgepack"
        result = edgepack.package(digits["model"], str(out), quantize="int8-static", calibration=calibration,
                                  eval_data=digits["eval"], quantize_options={"calibration_samples": 32})
        assert result.report["quantization"]["calibration_samples"] == 32
        test = np.load(digits["eval"])
        for batch in (1, 7, len(test["x"])):
            assert load(out).run({"x": test["x"][:batch]})["logits"].shape == (batch, 10)


def test_decoder_int8_dynamic_and_int4_weight(decoder, tmp):
    ids = np.load(decoder["eval"])["ids"]
    ref = ort.InferenceSession(decoder["model"], providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    fp32_bytes = os.path.getsize(decoder["model"])
    for mode in ("int8-dynamic", "int4-weight"):
        out = tmp / f"{mode}.edgepack"
        result = edgepack.package(decoder["model"], str(out), quantize=mode, eval_data=decoder["eval"])
        logits = load(out).run({"ids": ids})["logits"]
        assert logits.shape == ref.shape and np.isfinite(logits).all()
        cosine = float((ref * logits).sum() / np.linalg.norm(ref) / np.linalg.norm(logits))
        ratio = os.path.getsize(out) / fp32_bytes
        q = result.report["quantization"]
        print(f"decoder {mode}: bundle {ratio:.3f}x the fp32 .onnx, output cosine {cosine:.4f}, {q['quantized']}")
        reported = result.report["fidelity"]["outputs"]["logits"]
        assert reported["cosine_min"] <= cosine + 1e-6 and q["float_targeted"] == []
        if mode == "int4-weight":
            assert ratio <= 0.20
            assert q["quantized"]["GatherBlockQuantized uint4"] == 1          # the embedding table
            assert q["quantized"]["MatMulNBits uint4"] == 3 * 4 + 1          # qkv, proj, 2 MLP per block; output
            graph = quant_models.bundle_model(out)
            levels = {a.i for n in graph.graph.node if n.op_type == "MatMulNBits" for a in n.attribute
                      if a.name == "accuracy_level"}
            assert levels == {4}
        else:
            assert ratio <= 0.25 and q["quantized"] == {"MatMulInteger int8": 13, "Gather uint8": 1}
        assert cosine > 0.9, "a quantized decoder that no longer resembles its fp32 self"


def test_int4_block_size_trades_size_for_fidelity(decoder, tmp):
    sizes, cosines = {}, {}
    for block in (16, 128):
        out = tmp / f"b{block}.edgepack"
        result = edgepack.package(decoder["model"], str(out), quantize="int4-weight",
                                  eval_data=decoder["eval"], quantize_options={"block_size": block})
        sizes[block] = os.path.getsize(out)
        cosines[block] = result.report["fidelity"]["outputs"]["logits"]["cosine_mean"]
    assert sizes[128] < sizes[16] and cosines[128] < cosines[16]
