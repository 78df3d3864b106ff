"""Models as real exporters write them: dim_value -1 for a dynamic dimension, weights in Constant nodes,
opset 11, ReduceMax with an `axes` attribute; and what packaging, pruning, quantizing and measuring them
used to break."""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import real_exporters as rx
from edgepack.runtime import load
from edgepack.runtime import errors as E

pytestmark = pytest.mark.packager


def _ort(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _folder(tmp, feeds_list) -> str:
    folder = tmp / "calib"
    folder.mkdir()
    for i, feeds in enumerate(feeds_list):
        np.savez(folder / f"{i:03d}.npz", **feeds)
    return str(folder)


@pytest.fixture(scope="module")
def paddle(tmp_path_factory):
    """The Paddle-style model, a folder of 8 calibration feeds [1, 3, 16, 24], and one feed."""
    tmp = tmp_path_factory.mktemp("paddle")
    model, feeds = rx.paddle_cnn()
    rng = np.random.default_rng(1)
    folder = _folder(tmp, [{"x": rng.random((1, 3, 16, 24), dtype=np.float32)} for _ in range(8)])
    onnx.save(model, tmp / "paddle.onnx")
    return tmp, model, feeds, folder


def test_the_model_really_has_negative_dims(paddle):
    _, model, _, _ = paddle
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == -1 and not dims[2].HasField("dim_value") and not dims[2].dim_param


def test_normalize_dims_makes_non_positive_values_dynamic():
    from edgepack.packager.dims import dynamic_inputs, input_dims, normalize_dims

    model, _ = rx.paddle_cnn(batch_dim=0)
    assert normalize_dims(model) == 2  # the input's and the output's batch
    assert input_dims(model) == [("x", [None, 3, None, None])]
    assert dynamic_inputs(model) == ["x"]
    assert not model.graph.output[0].type.tensor_type.shape.dim[0].HasField("dim_value")


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic", "none"])
def test_paddle_style_model_packages_from_a_folder_of_feeds(paddle, tmp, mode):
    import edgepack

    folder_tmp, model, feeds, folder = paddle
    result = edgepack.package(str(folder_tmp / "paddle.onnx"), tmp / "p.edgepack", quantize=mode,
                              calibration=folder if mode == "int8-static" else None)
    assert result.report["import"] if "import" in result.report else True
    got = load(tmp / "p.edgepack").run(feeds)["probs"]
    assert np.abs(got - _ort(model, feeds)).max() < 0.05
    # the shapes of the calibration data are recorded for run, measure and report to make up feeds with
    if mode == "int8-static":
        assert result.report["input_shapes"] == {"x": [1, 3, 16, 24]}


def test_random_probes_and_sample_checks_treat_minus_one_as_dynamic(paddle):
    from edgepack.packager.quantize.samples import model_inputs, random_samples

    _, model, _, _ = paddle
    assert model_inputs(model)["x"][1] == [None, 3, None, None]
    probe = random_samples(model, count=1)
    assert probe is not None and probe.feeds[0]["x"].shape == (1, 3, 1, 1)


def test_runtime_feeds_treat_non_positive_dims_as_dynamic():
    from edgepack.runtime.feeds import random_feeds, show_shape

    feeds, guessed = random_feeds([("x", np.float32, (-1, 3, None, "h")), ("ids", np.int64, (0, 4))])
    assert feeds["x"].shape == (1, 3, 1, 1) and feeds["ids"].shape == (1, 4) and guessed == ["x", "ids"]
    assert show_shape((-1, 3, None, "height")) == "[?, 3, ?, height]"
    feeds, guessed = random_feeds([("x", np.float32, (-1, 3, None, None))], {"x": (2, 3, 8, 9)})
    assert feeds["x"].shape == (2, 3, 8, 9) and guessed == []
    feeds, guessed = random_feeds([("x", np.float32, (-1, 3, None, None))], None, {"x": (1, 3, 5, 6)})
    assert feeds["x"].shape == (1, 3, 5, 6) and guessed == []


def test_constant_weights_count_as_parameters_and_flops_count_positions(paddle, tmp):
    import edgepack

    folder_tmp, model, _, folder = paddle
    unsized = edgepack.package(str(folder_tmp / "paddle.onnx"), tmp / "a.edgepack", prune="channels:0.5")
    sized = edgepack.package(str(folder_tmp / "paddle.onnx"), tmp / "b.edgepack", prune="channels:0.5",
                             calibration=folder, reconstruct=True)
    expected = 8 * 3 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 3  # every Constant-node weight
    for r in (unsized, sized):
        assert r.report["prune"]["params"]["before"] == expected
    conv0 = next(x for x in sized.report["prune"]["layers"] if x["shape"][0] == [8, 3, 3, 3])
    assert conv0["flops"][0] == 2 * (8 * 3 * 9) * (8 * 12)  # 8x12 output positions of a 16x24 input, stride 2
    assert unsized.report["prune"]["flops"]["unsized_layers"] == 2
    assert "unsized_layers" not in sized.report["prune"]["flops"]
    from edgepack.packager.prune.summary import summary_lines

    lines = summary_lines(unsized.report["prune"])
    assert any("spatial size (or sequence length) of 2 convolution" in line for line in lines)


def test_shape_given_to_package_sizes_probes_and_is_recorded(tmp):
    import edgepack

    model, feeds = rx.detector()
    result = edgepack.package(model, tmp / "d.edgepack", shapes={"x": (1, 3, 8, 8)}, prune="channels:0.5")
    assert result.report["input_shapes"] == {"x": [1, 3, 8, 8]}
    assert "unsized_layers" not in result.report["prune"]["flops"]
    with pytest.raises(E.OptionError, match="not an input"):
        edgepack.package(model, tmp / "e.edgepack", shapes={"y": (1, 3, 8, 8)})
    with pytest.raises(E.OptionError, match="does not fit"):
        edgepack.package(model, tmp / "e.edgepack", shapes={"x": (1, 4, 8, 8)})


def test_measure_uses_shapes_and_names_the_input_it_cannot_size(tmp):
    import edgepack
    from edgepack.runtime.measure import measure

    model, _ = rx.detector()
    edgepack.package(model, tmp / "d.edgepack")
    with pytest.raises(E.InputError, match=r"shape of x \[batch, 3, height, width\] is not known.*--shape"):
        measure(tmp / "d.edgepack", runs=1)
    assert measure(tmp / "d.edgepack", runs=1, shapes={"x": (1, 3, 8, 8)})["bundle"]["runs"] == 1
    with pytest.raises(E.OptionError, match="not an input"):
        measure(tmp / "d.edgepack", runs=1, shapes={"nope": (1,)})
    edgepack.package(model, tmp / "r.edgepack", shapes={"x": (1, 3, 8, 8)})
    assert measure(tmp / "r.edgepack", runs=1)["bundle"]["runs"] == 1  # the recorded shape


def test_int4_leaves_the_opset_alone_without_tables(tmp):
    import edgepack

    model, feeds = rx.matmul_reducemax()
    result = edgepack.package(model, tmp / "r4.edgepack", quantize="int4-weight")
    q = result.report["quantization"]
    assert "opset" not in q and "tables_left_float" not in q
    ref, got = _ort(model, feeds).ravel(), load(tmp / "r4.edgepack").run(feeds)["y"].ravel()
    assert ref @ got / np.linalg.norm(ref) / np.linalg.norm(got) >= 0.99


def test_int4_quantizes_a_real_table_at_opset_21(tmp):
    import edgepack

    model, feeds = rx.matmul_reducemax(gather=True)
    result = edgepack.package(model, tmp / "g4.edgepack", quantize="int4-weight")
    assert result.report["quantization"]["opset"] == 21
    assert load(tmp / "g4.edgepack").run(feeds)["y"].shape == (4, 1)


def test_int4_falls_back_to_matmuls_when_the_conversion_fails(tmp, monkeypatch):
    """onnx's version converter fails on some graphs (ops it has no adapter for): the MatMuls are still
    quantized, the table stays float, and the warning says why."""
    import edgepack
    from edgepack.packager.quantize import int4

    def refuse(model, version, needed_by, otherwise):
        raise E.ModelError(f"cannot convert the model from opset 13 to {version}, which {needed_by} needs "
                           "(No Adapter For Current Version)")

    monkeypatch.setattr(int4, "raise_opset", refuse)
    model, feeds = rx.matmul_reducemax(gather=True)
    result = edgepack.package(model, tmp / "f4.edgepack", quantize="int4-weight")
    q = result.report["quantization"]
    assert q["tables_left_float"]["tables"] and "opset" not in q
    assert any("MatMul weights only" in w and "No Adapter" in w for w in result.report["warnings"])
    ref, got = _ort(model, feeds).ravel(), load(tmp / "f4.edgepack").run(feeds)["y"].ravel()
    assert ref @ got / np.linalg.norm(ref) / np.linalg.norm(got) >= 0.99


def test_calibration_method_without_effect_is_said_and_not_recorded(paddle, tmp):
    import edgepack

    folder_tmp, _, _, folder = paddle
    for method in ("entropy", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = edgepack.package(str(folder_tmp / "paddle.onnx"), tmp / f"{method}.edgepack", quantize="int8-static",
                                 calibration=folder, quantize_options={"method": method})
        q = r.report["quantization"]
        step = load(tmp / f"{method}.edgepack").manifest.provenance["steps"]
        recorded = next(s for s in step if s["name"] == "quantize")["options"]["method"]
        if q.get("method_asked"):  # it had no effect: said so, and the bundle records minmax
            assert q["method"] == recorded == "minmax" and q["method_asked"] == method
            assert any(f"--calibration-method {method} had no effect" in w for w in r.report["warnings"])
        else:
            assert q["method"] == recorded == method and q["method_effect"] == "ranges differ from minmax's"
            assert not any("had no effect" in w for w in r.report["warnings"])


def test_same_as_minmax_tells_methods_apart(paddle, tmp):
    """The check itself: percentile clips the tail that minmax keeps, so their tensors differ here."""
    from edgepack.packager import modelfiles
    from edgepack.packager.quantize import static
    from edgepack.packager.quantize.method_check import same_as_minmax
    from edgepack.packager.quantize.options import QuantizeOptions
    from edgepack.packager.quantize.prepare import constants_to_initializers
    from edgepack.packager.quantize.samples import load_for

    _, model, _, folder = paddle
    work = onnx.ModelProto()
    work.CopyFrom(model)
    constants_to_initializers(work)
    samples = load_for(work, folder, "calibration data")
    opts = QuantizeOptions(mode="int8-static", method="percentile", per_channel=False, format="qdq",
                           activation_type="uint8", weight_type="int8", reduce_range=False,
                           op_types=("Conv", "MatMul"), calibration=folder)
    with modelfiles.workdir() as d:
        minmax, _ = static.quantize(work, QuantizeOptions(**{**opts.__dict__, "method": "minmax"}), samples, d)
        assert same_as_minmax(work, minmax, opts, samples, d)
        percentile, _ = static.quantize(work, opts, samples, os.path.join(d))
        assert not same_as_minmax(work, percentile, opts, samples, d)
