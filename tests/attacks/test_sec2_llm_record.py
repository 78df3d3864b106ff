"""Finding F3 of the second security review: generate() trusted report["llm"] (AttributeError / TypeError /
ValueError on a malformed record), allocated a KV cache of whatever size the graph declared (numpy
MemoryError for terabytes), and let onnxruntime's errors from run_with_iobinding escape untyped."""

import numpy as np
import pytest
from bundles import edit_manifest
from edgepack.packager import package
from edgepack.runtime import load
from edgepack.runtime.errors import InputError, InvalidManifest, SessionError
from onnx import TensorProto, helper, numpy_helper


def tiny_lm(heads=2, dim=4, vocab=64, table=64, embed=True):
    """A KV-cache language model in the Optimum convention: the cache grows by the token's embedding and the
    logits are a row of a table (`table` rows: ids past it make Gather fail inside onnxruntime)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((table, vocab)).astype(np.float32), "L")]
    nodes = [helper.make_node("Gather", ["L", "input_ids"], ["logits"])]
    if embed:
        inits += [numpy_helper.from_array(rng.standard_normal((table, 8)).astype(np.float32), "E"),
                  numpy_helper.from_array(np.array([1, -1, 2, 4], np.int64), "shp")]
        nodes += [helper.make_node("Gather", ["E", "input_ids"], ["e"]),
                  helper.make_node("Reshape", ["e", "shp"], ["e4"]),
                  helper.make_node("Transpose", ["e4"], ["kv"], perm=[0, 2, 1, 3])]
        new = "kv"
    else:
        new = None
    for kind in ("key", "value"):
        past = f"past_key_values.0.{kind}"
        nodes.append(helper.make_node("Concat", [past, new or past], [f"present.0.{kind}"], axis=2))
    ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "s"]),
           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "t"])]
    ins += [helper.make_tensor_value_info(f"past_key_values.0.{k}", TensorProto.FLOAT, [1, heads, "p", dim])
            for k in ("key", "value")]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "s", vocab])]
    outs += [helper.make_tensor_value_info(f"present.0.{k}", TensorProto.FLOAT, None) for k in ("key", "value")]
    g = helper.make_graph(nodes, "g", ins, outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.edgepack"
    package(tiny_lm(), path)
    return path.read_bytes()


@pytest.mark.parametrize("record", [
    [1], {"tokenizer": "tokenizer.json"}, {"tokenizer": {"tokenizer.json": 5}}, {"eos_token_ids": 5},
    {"eos_token_ids": ["x"]}, {"eos_token_ids": [[1]]}, {"context_length": "abc"}, {"context_length": [4]},
    {"context_length": 3.7}, {"context_length": True}, {"bos_token_id": "<s>"}],
    ids=lambda r: str(r)[:40])
def test_a_malformed_llm_record_is_one_typed_error(tmp_path, lm, record):
    path = tmp_path / "bad.edgepack"
    path.write_bytes(edit_manifest(lm, lambda m: m.update(report={"llm": record})))
    with pytest.raises(InvalidManifest, match="report.llm"):
        load(path).generate([1, 2], 3)


def test_the_well_formed_record_still_generates(tmp_path, lm):
    path = tmp_path / "ok.edgepack"
    path.write_bytes(edit_manifest(lm, lambda m: m.update(report={"llm": {"context_length": 16,
                                                                          "eos_token_ids": [63]}})))
    out = load(path).generate([1, 2], 3)
    assert len(out.token_ids) <= 3 and out.prompt_tokens == 2


def test_a_kv_cache_larger_than_memory_is_refused_before_allocating(tmp_path):
    path = tmp_path / "big.edgepack"
    package(tiny_lm(heads=1 << 20, dim=1 << 20, embed=False), path)
    with pytest.raises(InputError, match="KV cache"):
        load(path).generate([1, 2], 3)


def test_an_onnxruntime_failure_in_a_step_is_a_session_error(tmp_path):
    path = tmp_path / "oob.edgepack"
    package(tiny_lm(table=4), path)  # token 10 is past the 4-row tables: Gather fails inside onnxruntime
    with pytest.raises(SessionError, match="generation step"):
        load(path).generate([10], 3)
