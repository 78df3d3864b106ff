"""Findings F4, F5, F6 and F9 of the third security review, through the CLI: a hostile bundle gets one line
`edgepack: error: ...` and exit 1 (never a traceback, exit 3, a GB allocation or raw terminal controls), and
measure --public-key is honoured for language-model bundles."""

import subprocess
import sys

import graphs
import numpy as np
import pytest
from bundles import edit_manifest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.runtime.errors import InputError

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, timeout=300)


def one_error(r, *words):
    """Exit 1 and one line `edgepack: error: ...` holding `words`."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert lines[-1].startswith("edgepack: error: ") and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in lines[-1], lines[-1]


def lm(past_rank=4, vocab=4):
    """A tiny causal 'language model' in the Optimum KV-cache convention (one layer, 1 head of 2)."""
    f = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    i64 = lambda n, s: helper.make_tensor_value_info(n, TensorProto.INT64, s)
    past = [1, 1, "P", 2] if past_rank == 4 else [1, "P"]
    new = "k2" if past_rank == 4 else "idf"
    axis = 2 if past_rank == 4 else 1
    nodes = [helper.make_node("Cast", ["input_ids"], ["idf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["idf", "ax13"], ["k1"]),
             helper.make_node("Concat", ["k1", "k1"], ["k2"], axis=3),
             helper.make_node("Concat", ["past_key_values.0.key", new], ["present.0.key"], axis=axis),
             helper.make_node("Concat", ["past_key_values.0.value", new], ["present.0.value"], axis=axis),
             helper.make_node("Unsqueeze", ["idf", "ax2"], ["u"]),
             helper.make_node("MatMul", ["u", "W"], ["logits"])]
    inits = [numpy_helper.from_array(np.array([1, 3], np.int64), "ax13"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(np.arange(vocab, dtype=np.float32)[None] * 0.1, "W")]
    g = helper.make_graph(nodes, "lm", [i64("input_ids", [1, "S"]), i64("attention_mask", [1, "T"]),
                                        f("past_key_values.0.key", past), f("past_key_values.0.value", past)],
                          [f("logits", [1, "S", vocab]), f("present.0.key", past), f("present.0.value", past)],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def lm_bundle(folder, name, past_rank=4):
    clean = folder / f"{name}.clean.edgepack"
    edgepack.package(lm(past_rank), output=clean)
    path = folder / f"{name}.edgepack"

    def edit(m):
        m.setdefault("report", {})["llm"] = {"context_length": 64, "eos_token_ids": []}
    path.write_bytes(edit_manifest(clean.read_bytes(), edit))
    return path


def test_f4_measure_checks_the_public_key_of_a_language_model_bundle(tmp_path):
    from edgepack.packager.sign import keygen

    bundle = lm_bundle(tmp_path, "plain")
    pair = keygen(tmp_path / "k")
    one_error(cli("measure", bundle, "--public-key", pair.public_path), "not signed")
    one_error(cli("measure", bundle, "--target", "no-such-target"), "no-such-target")
    r = cli("measure", bundle)  # without a key it is measured
    assert r.returncode == 0 and "language model" in r.stdout, r.stderr


def test_f5_a_recorded_sample_shape_too_large_is_refused_not_allocated(tmp_path):
    model, _ = graphs.mlp(hidden=(16,))
    clean = tmp_path / "clean.edgepack"
    edgepack.package(model, output=clean)
    bundle = tmp_path / "huge.edgepack"

    def edit(m):
        m.setdefault("report", {})["input_shapes"] = {"x": [2**40, 64]}
    bundle.write_bytes(edit_manifest(clean.read_bytes(), edit))
    one_error(cli("run", bundle), "'x'", "--shape", "--inputs")
    one_error(cli("measure", bundle, "--runs", "1"), "'x'", "--shape")
    # just over the bound (2**24 + 64 elements): refused by the limit, not by numpy running out of memory
    mid = tmp_path / "mid.edgepack"

    def edit_mid(m):
        m.setdefault("report", {})["input_shapes"] = {"x": [2**18 + 1, 64]}
    mid.write_bytes(edit_manifest(clean.read_bytes(), edit_mid))
    one_error(cli("run", mid), "'x'", "16777216", "--shape")
    r = cli("run", bundle, "--shape", "x=3,64")  # the user's shape replaces the bundle's
    assert r.returncode == 0 and "[3, " in r.stdout, r.stderr
    # a --shape too large for this machine: a typed error, not MemoryError
    one_error(cli("run", bundle, "--shape", f"x={2**40},64"), "'x'", "--shape")
    from edgepack.runtime.feeds import MAX_RECORDED_ELEMENTS, recorded_shapes

    with pytest.raises(InputError):
        recorded_shapes({"report": {"input_shapes": {"x": [MAX_RECORDED_ELEMENTS + 1]}}})
    assert recorded_shapes({"report": {"input_shapes": {"x": [MAX_RECORDED_ELEMENTS]}}}) == {
        "x": (MAX_RECORDED_ELEMENTS,)}


def _seq_and_zipmap(folder):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    seq = helper.make_graph([helper.make_node("SequenceConstruct", ["x", "x"], ["s"])], "seq", [x],
                            [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)])
    m = helper.make_model(seq, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    edgepack.package(m, output=folder / "seq.edgepack")
    zm_type = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    zm = helper.make_graph([helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1])],
                           "zm", [x], [helper.make_value_info("z", zm_type)])
    m2 = helper.make_model(zm, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    m2.ir_version = 8
    edgepack.package(m2, output=folder / "zipmap.edgepack")


def test_f6_rank2_kv_cache_out_of_vocabulary_ids_and_non_tensor_outputs_are_typed_errors(tmp_path):
    one_error(cli("generate", lm_bundle(tmp_path, "rank2", past_rank=2), "--prompt-ids", "1,2"),
              "past_key_values.0.key")
    ids = tmp_path / "ids.npz"
    np.savez(ids, ids=np.array([1, 100, 1, 100, 1], np.int64))
    one_error(cli("perplexity", lm_bundle(tmp_path, "ppl"), "--text", ids), "100", "vocabulary")
    one_error(cli("generate", lm_bundle(tmp_path, "big"), "--prompt-ids", str(2**70)), "token ids")

    _seq_and_zipmap(tmp_path)
    r = cli("run", tmp_path / "seq.edgepack", "--output", tmp_path / "seq.npz")
    assert r.returncode == 0 and "s: sequence of 2 tensors" in r.stdout, r.stderr
    with np.load(tmp_path / "seq.npz") as saved:
        assert saved.files == ["s[0]", "s[1]"] and saved["s[0]"].shape == (1, 2)
    r = cli("run", tmp_path / "zipmap.edgepack")
    assert r.returncode == 0 and "z: sequence of 1 map" in r.stdout, r.stderr
    one_error(cli("run", tmp_path / "zipmap.edgepack", "--output", tmp_path / "z.npz"), "'z'", "map")
    assert not (tmp_path / "z.npz").exists()


TERM = "\x1b[2J\x1b]0;pwned\x07\x9b31m\x1b[31mFAKE: signature OK\x1b[0m"


def raw_controls(text):
    """The C0/C1 control characters (newline and tab aside) in `text`."""
    return [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7f <= ord(ch) < 0xa0]


def term_bundle(path, scale=1.0):
    """A bundle whose input, output, node and weight names carry terminal controls."""
    x, y, w = "x" + TERM, "y" + TERM, "w" + TERM
    g = helper.make_graph([helper.make_node("MatMul", [x, w], [y], name="n" + TERM)], "t",
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 2])],
                          [numpy_helper.from_array(np.eye(2, dtype=np.float32) * scale, w)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    edgepack.package(m, output=path)
    return path


def test_f9_output_names_are_printed_escaped(tmp_path):
    bundle = term_bundle(tmp_path / "term.edgepack")
    r = cli("run", bundle)
    assert r.returncode == 0, r.stderr
    assert not raw_controls(r.stdout) and not raw_controls(r.stderr), (r.stdout, r.stderr)
    assert "\\x1b]0;pwned\\x07" in r.stdout and "\\x1b]0;pwned\\x07" in r.stderr  # output and input names
    for args in (("inspect", bundle, "--all"), ("report", bundle, "-o", "-", "--format", "md", "--no-measure")):
        r = cli(*args)
        assert r.returncode == 0 and ("\\x1b]0;pwned" in r.stdout or args[0] == "report"), r.stderr
        assert not raw_controls(r.stdout) and not raw_controls(r.stderr), args


def test_f9_delta_and_inspect_of_an_update_print_tensor_names_escaped(tmp_path):
    old, new = term_bundle(tmp_path / "old.edgepack"), term_bundle(tmp_path / "new.edgepack", scale=3.0)
    update = tmp_path / "u.delta"
    for args in (("delta", old, new, "-o", update), ("inspect", update)):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        assert not raw_controls(r.stdout) and not raw_controls(r.stderr), (args, r.stdout)
        assert "w\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m" in r.stdout, r.stdout


def test_f9_an_internal_error_naming_a_bundle_string_is_printed_escaped(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import edgepack.runtime
    from edgepack.cli import cli as group

    def load(*args, **kwargs):  # an unexpected exception whose message quotes a bundle's name
        raise RuntimeError("no output y" + TERM)

    monkeypatch.setattr(edgepack.runtime, "load", load)
    res = CliRunner().invoke(group, ["run", str(term_bundle(tmp_path / "t.edgepack"))])
    assert res.exit_code == 3 and "edgepack: internal error: RuntimeError" in res.output, res.output
    assert not raw_controls(res.output) and "\\x1b]0;pwned\\x07" in res.output, res.output
