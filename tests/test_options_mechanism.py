"""One options mechanism for every step (packager/options.py): each kind of annotation checked the same way on
ConvertOptions, PruneOptions, QuantizeOptions and Budget, each class's own range checks run by it, and
package() taking every step's options as an object or a dict of its fields."""

import dataclasses
import math
import pathlib
import re
from dataclasses import dataclass

import onnx
import pytest

import edgepack
import graphs
import prune_graphs as pg
from edgepack.packager.convert.options import ConvertOptions
from edgepack.packager.options import Options, build
from edgepack.packager.prune import PruneOptions
from edgepack.packager.quantize import QuantizeOptions
from edgepack.packager.search import Budget
from edgepack.runtime import load, open_bundle
from edgepack.runtime.errors import EdgepackError, OptionError

pytestmark = pytest.mark.packager

CLASSES = [(ConvertOptions, "convert"), (PruneOptions, "pruning"), (QuantizeOptions, "quantization"),
           (Budget, "budget")]


def refused(cls, given, message):
    with pytest.raises(OptionError, match=re.escape(message)) as e:
        build(cls, given)
    assert isinstance(e.value, EdgepackError)


@pytest.mark.parametrize("cls, what", CLASSES)
def test_unknown_keys_are_refused_naming_the_known_ones(cls, what):
    known = ", ".join(f.name for f in dataclasses.fields(cls))
    refused(cls, {"bogus": 1, "also_bogus": 2}, f"unknown {what} option(s) ['also_bogus', 'bogus']; known: {known}")


@pytest.mark.parametrize("cls, what", CLASSES)
def test_neither_an_instance_nor_a_dict_is_refused(cls, what):
    refused(cls, ["opset", 18], f"{what} options must be a {cls.__name__} or a dict of its fields, got list")


@pytest.mark.parametrize("cls, given, message", [
    # Literal
    (PruneOptions, {"scope": "model"}, "--prune-scope must be one of global, layer; got 'model'"),
    (QuantizeOptions, {"format": "QDQ"}, "format must be one of qdq, qoperator; got 'QDQ'"),
    (QuantizeOptions, {"int4_method": "awq"}, "int4-method must be one of gptq, rtn; got 'awq'"),
    # bool: True or False, not 1 or "yes"
    (ConvertOptions, {"dynamic_batch": 1}, "dynamic_batch must be true or false, got 1"),
    (Budget, {"allow_slower": "yes"}, "allow_slower must be true or false, got 'yes'"),
    (QuantizeOptions, {"symmetric": 0}, "symmetric must be true or false, got 0"),
    (PruneOptions, {"reconstruct": "no"}, "--reconstruct must be true or false, got 'no'"),
    # int: not a bool, not a float, not a string
    (PruneOptions, {"round_to": True}, "--prune-round-to must be a positive whole number, got True"),
    (ConvertOptions, {"opset": "18"}, "opset must be an integer from 13 to 21, got '18'"),
    (QuantizeOptions, {"calibration_samples": 8.0}, "calibration-samples must be at least 1, got 8.0"),
    (Budget, {"max_trials": 2.0}, "max_trials must be a positive whole number, got 2.0"),
    (Budget, {"max_bytes": 1000.0}, "--max-bytes must be a whole number of bytes, got 1000.0"),
    # float: an int or float, not a bool, finite
    (Budget, {"min_cosine": True}, "--min-cosine must be a number, got True"),
    (Budget, {"max_latency_ms": float("inf")}, "--max-latency-ms must be a number, got inf"),
    (ConvertOptions, {"rtol": "1e-3"}, "rtol must be a finite number >= 0, got '1e-3'"),
    (PruneOptions, {"ridge": "0.1"}, "ridge must be positive, got '0.1'"),
    (QuantizeOptions, {"max_perplexity_increase": math.nan}, "max-perplexity-increase must be a percentage >= 0, "
                                                             "got nan"),
    # tuple[str, ...]: a list or tuple of non-empty strings, not one string
    (QuantizeOptions, {"op_types": "MatMul"}, "op-types must be a list of names, got 'MatMul'"),
    (QuantizeOptions, {"exclude_nodes": ["a", ""]}, "exclude-nodes must be a list of names, got ['a', '']"),
    (ConvertOptions, {"input_names": ("x", 3)}, "input_names must be a list of distinct non-empty names, got "
                                                "('x', 3)"),
    # a path: str or os.PathLike
    (QuantizeOptions, {"calibration": 3}, "calibration must be a path to an .npz file or a folder of them, got 3"),
])
def test_each_kind_of_annotation_refuses_the_wrong_type(cls, given, message):
    refused(cls, given, message)


@pytest.mark.parametrize("cls, given, message", [
    (PruneOptions, {"ratio": 1.5}, "prune ratio must be between 0 and 1 (exclusive), got 1.5; e.g. --prune "
                                   "channels:0.3"),
    (PruneOptions, {"max_layer_ratio": 0}, "max_layer_ratio must be between 0 and 1 (exclusive), got 0"),
    (PruneOptions, {"method": "unstructured", "reconstruct": True}, "use it with --prune channels:RATIO"),
    (ConvertOptions, {"opset": 22}, "opset must be an integer from 13 to 21, got 22"),
    (ConvertOptions, {"atol": -1e-6}, "atol must be a finite number >= 0, got -1e-06"),
    (ConvertOptions, {"output_names": ["y", "y"]}, "output_names must be a list of distinct non-empty names"),
    (QuantizeOptions, {"block_size": 24}, "block-size must be a power of two of at least 16, got 24"),
    (QuantizeOptions, {"accuracy_level": 5}, "accuracy-level must be 0 to 4"),
    (QuantizeOptions, {"calibration_samples": 0}, "calibration-samples must be at least 1, got 0"),
    (Budget, {"min_agreement": 2}, "--min-agreement must be between 0 and 1 (a fraction, e.g. 0.99 for 99%), got 2"),
    (Budget, {"max_memory_mb": -5.0}, "--max-memory-mb must be positive, got -5.0"),
    (Budget, {"max_trials": 0}, "max_trials must be a positive whole number, got 0"),
])
def test_the_class_range_checks_run_after_the_types(cls, given, message):
    refused(cls, given, message)


def test_none_where_the_annotation_allows_it_and_a_dict_none_means_the_default():
    assert build(QuantizeOptions, {"mode": "int8-dynamic", "per_channel": None}).per_channel is None
    assert build(ConvertOptions, {"input_names": None}).input_names is None
    assert build(Budget, {"max_bytes": None}).max_bytes is None
    # a None in a dict is "not given" (unset flags, JSON null), also for a field that cannot be None ...
    assert build(PruneOptions, {"ratio": None, "round_to": None}) == PruneOptions()
    assert build(Budget, {"max_trials": None}).max_trials == 24
    # ... but the field itself refuses it
    for make, message in [(lambda: PruneOptions(ratio=None), "prune ratio must be a number, got None"),
                          (lambda: ConvertOptions(opset=None), "opset must be an integer from 13 to 21, got None"),
                          (lambda: Budget(max_trials=None), "max_trials must be a positive whole number, got None"),
                          (lambda: QuantizeOptions(mode=None), "mode must be one of fp16, int4-weight, "
                                                               "int8-dynamic, int8-static, none; got None")]:
        with pytest.raises(OptionError, match=re.escape(message)):
            make()


def test_lists_become_tuples_and_paths_strings(tmp):
    q = build(QuantizeOptions, {"mode": "int8-static", "op_types": ["Conv", "MatMul"], "exclude_nodes": ["a"],
                                "calibration": pathlib.Path(tmp) / "c.npz"})
    assert q.op_types == ("Conv", "MatMul") and type(q.op_types) is tuple and q.exclude_nodes == ("a",)
    assert q.calibration == str(pathlib.Path(tmp) / "c.npz") and type(q.calibration) is str
    c = ConvertOptions(input_names=["x", "mask"])  # the constructor normalises too: the options stay hashable
    assert c.input_names == ("x", "mask") and hash(c) == hash(ConvertOptions(input_names=("x", "mask")))
    assert PruneOptions(ridge=1).ridge == 1 and Budget(min_cosine=1).min_cosine == 1  # an int is a number


def test_instances_are_checked_when_made_and_passed_through():
    opts = PruneOptions(ratio=0.5, scope="global")
    assert build(PruneOptions, opts) is opts and build(Budget, None) == Budget()
    with pytest.raises(OptionError, match=re.escape("prune ratio must be between 0 and 1 (exclusive), got 2")):
        dataclasses.replace(opts, ratio=2)  # replace() constructs, so it is checked too
    with pytest.raises(OptionError, match=re.escape("--prune-criterion must be one of activation, l1, l2; got 'l3'")):
        PruneOptions(criterion="l3")


def test_an_annotation_without_a_rule_is_a_bug_found_at_the_first_construction():
    @dataclass(frozen=True)
    class Odd(Options):
        x: complex = 0j

    with pytest.raises(TypeError, match="Odd.x: no rule for the annotation"):
        Odd()


# package(): every step's options as an object or a dict


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    d = tmp_path_factory.mktemp("options_mechanism")
    model, feeds = pg.residual_block()
    onnx.save(model, d / "m.onnx")
    return d, feeds


def _steps(path):
    with open_bundle(path) as b:
        return {s["name"]: s.get("options") for s in b.manifest.raw["provenance"]["steps"]}


def test_package_prune_as_spec_dict_or_options_gives_the_same_bundle(residual):
    d, feeds = residual
    spec = edgepack.package(d / "m.onnx", output=d / "spec.edgepack", prune="channels:0.5", prune_scope="global",
                            prune_round_to=2)
    given = {"method": "channels", "ratio": 0.5, "scope": "global", "round_to": 2}
    as_dict = edgepack.package(d / "m.onnx", output=d / "dict.edgepack", prune=given)
    as_opts = edgepack.package(d / "m.onnx", output=d / "opts.edgepack", prune=PruneOptions(**given))
    prune = _steps(d / "spec.edgepack")["prune"]
    assert (prune["method"], prune["ratio"], prune["scope"], prune["round_to"]) == ("channels", 0.5, "global", 2)
    assert _steps(d / "dict.edgepack")["prune"] == _steps(d / "opts.edgepack")["prune"] == prune
    assert as_dict.report["prune"]["params"] == as_opts.report["prune"]["params"] == spec.report["prune"]["params"]
    assert spec.report["prune"]["params"]["after"] < spec.report["prune"]["params"]["before"]
    assert (d / "dict.edgepack").read_bytes() == (d / "spec.edgepack").read_bytes()
    out = load(d / "dict.edgepack").run(feeds)
    assert next(iter(out.values())).shape == (3, 5)


@pytest.mark.parametrize("kw, message", [
    ({"prune": {"method": "channels", "ratio": 0.5}, "prune_scope": "global"},
     "give scope, criterion, round_to and reconstruct inside PruneOptions (or the prune dict), not beside it "
     "(prune_scope='global')"),
    ({"prune": PruneOptions(), "reconstruct": True}, "not beside it (reconstruct=True)"),
    ({"prune": {"method": "channels", "sparsity": 0.5}}, "unknown pruning option(s) ['sparsity']"),
    ({"prune": {"ratio": "half"}}, "prune ratio must be a number, got 'half'"),
    ({"prune": 0.3}, "prune must be a spec such as 'channels:0.3', a PruneOptions or a dict of its fields, got "
                     "float"),
    ({"quantize": {"mode": "int8-dynamic"}, "quantize_options": {"per_channel": False}},
     "give quantization options either as a dict in quantize or in quantize_options, not both"),
    ({"quantize": {"mode": "int8-dynamic", "blocksize": 32}}, "unknown quantization option(s) ['blocksize']"),
    ({"quantize": {"per_channel": False}}, "per-channel does not apply to --quantize none"),
    ({"budget": {"max_bytes": "1M"}}, "--max-bytes must be a whole number of bytes, got '1M'"),
])
def test_package_refuses_options_before_reading_the_model(tmp, kw, message):
    with pytest.raises(OptionError, match=re.escape(message)):   # the model is missing: the options came first
        edgepack.package(tmp / "absent.onnx", output=tmp / "o.edgepack", **kw)


def test_package_quantize_as_dict_equals_mode_and_options(tmp):
    model, feeds = graphs.mlp(d_in=16, hidden=(32,), d_out=4)
    onnx.save(model, tmp / "m.onnx")
    flat = edgepack.package(tmp / "m.onnx", output=tmp / "flat.edgepack", quantize="int8-dynamic",
                            quantize_options={"per_channel": False, "op_types": ["MatMul", "Gemm"]})
    given = {"mode": "int8-dynamic", "per_channel": False, "op_types": ["MatMul", "Gemm"]}
    as_dict = edgepack.package(tmp / "m.onnx", output=tmp / "dict.edgepack", quantize=given)
    as_opts = edgepack.package(tmp / "m.onnx", output=tmp / "opts.edgepack", quantize=QuantizeOptions(**given))
    step = _steps(tmp / "dict.edgepack")["quantize"]
    assert (step["mode"], step["per_channel"], step["op_types"]) == ("int8-dynamic", False, ["MatMul", "Gemm"])
    assert _steps(tmp / "flat.edgepack")["quantize"] == step == _steps(tmp / "opts.edgepack")["quantize"]
    assert as_dict.report["quantization"]["quantized"] == flat.report["quantization"]["quantized"] \
        == as_opts.report["quantization"]["quantized"] != {}
    assert (tmp / "dict.edgepack").read_bytes() == (tmp / "flat.edgepack").read_bytes()
    out = load(tmp / "dict.edgepack").run(feeds)
    assert next(iter(out.values())).shape[-1] == 4
