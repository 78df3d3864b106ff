"""Language models: a Hugging Face Llama/Qwen2 folder exported with a KV cache and checked against
transformers; generation and perplexity in the runtime; int4 (GPTQ and round-to-nearest) with the embedding
and LM head quantized, the tied table stored once."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import llm_models  # noqa: E402
from edgepack.packager import package  # noqa: E402
from edgepack.runtime import load  # noqa: E402

pytestmark = pytest.mark.packager


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return llm_models.random_llama(str(tmp_path_factory.mktemp("llama") / "tiny"))


@pytest.fixture(scope="module")
def fp_bundle(folder, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("b") / "fp.edgepack")
    package(folder, out)
    return out


def _hf(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def _ids(folder, text="Return a new list containing"):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)(text).input_ids


def test_export_has_the_optimum_interface_and_matches_transformers(fp_bundle):
    s = load(fp_bundle)
    assert s.input_names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert "past_key_values.1.value" in s.input_names and "present.1.key" in s.output_names
    check = s.manifest.report["import"]["check"]
    assert check["max_abs_diff"] < 1e-3
    assert "tokenizer.json" in s.manifest.report["llm"]["tokenizer"]


def test_greedy_generation_reproduces_transformers(folder, fp_bundle):
    ids = _ids(folder)
    with torch.no_grad():
        ref = _hf(folder).generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)[0, len(ids):].tolist()
    got = load(fp_bundle).generate("Return a new list containing", max_new_tokens=24)
    if 1 in ref:  # transformers keeps the end-of-sequence token; generate() stops before it
        ref = ref[:ref.index(1)]
    assert got.token_ids == ref
    assert got.time_to_first_token_s > 0 and got.text is not None


def test_cache_buffers_are_allocated_once_and_steps_match_one_pass(fp_bundle):
    from edgepack.runtime.generate import KVRunner

    s = load(fp_bundle)
    seq = list(range(5, 25))
    full = KVRunner(s, 32, 32).step(seq).copy()
    runner = KVRunner(s, 32, 8)
    pointers = [b.ctypes.data for pair in runner.buffers for kv in pair for b in kv]
    steps = [runner.step(seq[:8]).copy()] + [runner.step([t]).copy() for t in seq[8:]]
    assert [b.ctypes.data for pair in runner.buffers for kv in pair for b in kv] == pointers
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=1e-4, atol=1e-4)


def test_perplexity_matches_transformers(folder, fp_bundle):
    from edgepack.runtime.perplexity import perplexity

    ids = _ids(folder, llm_models.TEXT[:400])
    window = 32
    nll, n = 0.0, 0
    model = _hf(folder)
    with torch.no_grad():
        for s in range(0, len(ids) - 1, window):
            chunk = ids[s:s + window]
            if len(chunk) < 2:
                break
            out = model(torch.tensor([chunk]), labels=torch.tensor([chunk]))
            nll += out.loss.item() * (len(chunk) - 1)
            n += len(chunk) - 1
    got = perplexity(load(fp_bundle), ids, window)
    assert got.tokens == n
    assert got.perplexity == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_sampling_is_seeded_and_stays_in_top_k(fp_bundle):
    s = load(fp_bundle)
    a = s.generate([5, 6, 7], 12, temperature=1.0, top_k=3, seed=4)
    b = s.generate([5, 6, 7], 12, temperature=1.0, top_k=3, seed=4)
    assert a.token_ids == b.token_ids


@pytest.mark.parametrize("how", ["generate", "perplexity"])
def test_a_token_id_beyond_the_vocabulary_is_an_input_error(fp_bundle, how):
    """The model's vocabulary (320) bounds the ids given, not only the format's 2**31: onnxruntime's embedding
    Gather failed mid-step instead (a SessionError, its log line on stderr)."""
    from edgepack.runtime.errors import InputError
    from edgepack.runtime.perplexity import perplexity

    s = load(fp_bundle)
    with pytest.raises(InputError, match="320 is not below the model's vocabulary size, 320"):
        s.generate([5, 320, 7], 2) if how == "generate" else perplexity(s, [320, 5, 6, 7])
    assert len(s.generate([5, 319, 7], 2).token_ids) <= 2


@pytest.mark.parametrize("method", ["gptq", "rtn"])
def test_int4_quantizes_every_weight_and_keeps_the_tied_table_once(folder, tmp_path, method):
    out = str(tmp_path / "q4.edgepack")
    r = package(folder, out, quantize="int4-weight", quantize_options={"int4_method": method})
    q = r.report["quantization"]
    assert q["method"] == method and q["tied_embedding_quantized"]
    assert q["quantized_matmuls"] == 2 * 7 + 1 and 5.0 < q["bits_per_weight"] < 5.3
    s = load(out)
    names = [t.name for t in s.manifest.tensors]
    assert "model.embed_tokens.weight" not in names and "model.embed_tokens.weight_Q4" in names
    assert not any(t.dtype == "float32" and len(t.shape) == 2 for t in s.manifest.tensors)
    assert len(s.generate([5, 6, 7], 8).token_ids) <= 8


def test_gptq_beats_round_to_nearest_on_its_calibration_text(folder, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text(llm_models.TEXT)
    ppl = {}
    for method in ("gptq", "rtn"):
        r = package(folder, str(tmp_path / f"{method}.edgepack"), quantize="int4-weight", calibration=str(text),
                    quantize_options={"int4_method": method})
        ppl[method] = r.report["quantization"]["perplexity"]
    assert ppl["gptq"]["increase_pct"] < ppl["rtn"]["increase_pct"]


def test_qwen2_with_biases_and_untied_head(tmp_path):
    folder = llm_models.random_llama(str(tmp_path / "qwen"), tied=False, kv_heads=1, arch="qwen2")
    out = str(tmp_path / "q.edgepack")
    r = package(folder, out)
    assert r.report["import"]["check"]["max_abs_diff"] < 1e-3
    assert load(out).generate([3, 4], 4).token_ids


def test_cli_generate_and_perplexity_json(fp_bundle, tmp_path):
    from click.testing import CliRunner

    from edgepack.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["generate", fp_bundle, "--prompt", "Open the file", "--max-new-tokens", "5", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {"text", "token_ids", "time_to_first_token_s", "tokens_per_s", "peak_rss_mb"} <= set(doc)
    text = tmp_path / "t.txt"
    text.write_text(llm_models.TEXT)
    res = runner.invoke(cli, ["perplexity", fp_bundle, "--text", str(text), "--window", "64", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["perplexity"] > 1
    res = runner.invoke(cli, ["generate", fp_bundle])
    assert res.exit_code == 1 and "--prompt" in res.output


def test_outlier_ratio_flags_one_huge_token():
    from edgepack.packager.quantize.lm_data import outlier_ratio

    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, (64, 32))
    assert outlier_ratio(x) < 2
    x[0, 5] = 2900.0  # the down_proj input on the first token of a window
    assert outlier_ratio(x) > 500


def test_int8_dynamic_language_model_reports_outliers_and_keeps_the_interface(folder, tmp_path):
    out = str(tmp_path / "q8.edgepack")
    r = package(folder, out, quantize="int8-dynamic")
    q = r.report["quantization"]
    assert "kept_float_for_outliers" in q and q["perplexity"]["quantized"] > 0
    # the summary line counts what was quantized (it said "0 weight nodes" while the MatMuls were int8)
    assert q["quantized_total"] == sum(q["quantized"].values()) > 0 and not q["float_targeted"]
    s = load(out)
    assert "past_key_values.0.key" in s.input_names and s.generate([5, 6], 4).token_ids


def test_measure_on_a_language_model_reports_generation(fp_bundle):
    from click.testing import CliRunner

    from edgepack.cli import cli

    res = CliRunner().invoke(cli, ["measure", fp_bundle, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["tokens_per_s"] > 0 and doc["time_to_first_token_s"] > 0 and doc["peak_mb"] >= doc["peak_load_mb"]


@pytest.mark.slow
def test_int4_on_trained_weights_keeps_perplexity_within_5_percent(tmp_path):
    """Really trained weights (the acceptance check's tiny Llama, fewer steps): int4 GPTQ against fp32 on
    held-out text, both measured by the runtime."""
    import os
    import subprocess
    import sys

    from edgepack.runtime.generate import token_ids_of
    from edgepack.runtime.perplexity import perplexity

    script = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "acceptance", "lib", "tiny_llama.py")
    if not os.path.isfile(script):
        pytest.skip("the shared tiny_llama.py is not beside this checkout")
    folder = str(tmp_path / "tiny_llama")
    subprocess.run([sys.executable, script, folder], check=True, env={**os.environ, "TINY_LLAMA_STEPS": "200"})
    text = open(os.path.join(folder, "heldout.txt")).read()
    ppl = {}
    for name, kw in (("fp", {}), ("q4", {"quantize": "int4-weight"})):
        out = str(tmp_path / f"{name}.edgepack")
        package(folder, out, **kw)
        s = load(out)
        ppl[name] = perplexity(s, token_ids_of(s, text), 128).perplexity
    assert ppl["q4"] <= ppl["fp"] * 1.05


def test_perplexity_budget_keeps_sensitive_matmuls_at_8_bits(folder, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text(llm_models.TEXT)
    r = package(folder, str(tmp_path / "b.edgepack"), quantize="int4-weight", calibration=str(text),
                quantize_options={"int4_method": "rtn", "max_perplexity_increase": 0.0})
    q = r.report["quantization"]
    assert q["most_sensitive"][0] in q["kept_8bit"]
    free = package(folder, str(tmp_path / "f.edgepack"), quantize="int4-weight", calibration=str(text),
                   quantize_options={"int4_method": "rtn"}).report["quantization"]
    assert q["perplexity"]["increase_pct"] < free["perplexity"]["increase_pct"]
    assert q["bits_per_weight"] > free["bits_per_weight"]


def test_cli_package_int4_prints_bits_and_perplexity(folder, tmp_path):
    from click.testing import CliRunner

    from edgepack.cli import cli

    res = CliRunner().invoke(cli, ["package", folder, "-o", str(tmp_path / "q.edgepack"), "--quantize", "int4-weight",
                                   "--int4-method", "rtn"])
    assert res.exit_code == 0, res.output
    assert "bits per weight" in res.output and "perplexity" in res.output


def test_input_specs_answer_in_like_their_names(fp_bundle):
    inputs = load(fp_bundle).inputs
    assert any("past" in spec for spec in inputs) and not any("nothing-like-this" in spec for spec in inputs)


def test_greedy_generation_from_token_ids_loads_neither_numpy_random_nor_the_tokenizer(fp_bundle):
    """The memory a plain onnxruntime loop does not spend: numpy.random (6.6 MB) is only for sampling, and a
    prompt of token ids decodes its text when .text is read (the tokenizer: 5.7 MB)."""
    import subprocess
    import sys

    code = f"""
import json, sys
from edgepack.runtime import load
s = load({fp_bundle!r})
g = s.generate([2, 3, 4, 5], max_new_tokens=8)
loaded = [m for m in ("numpy.random", "tokenizers") if m in sys.modules]
text = g.text
after = "tokenizers" in sys.modules
print(json.dumps({{"before_text": loaded, "after_text": after, "text": text, "ids": g.token_ids}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    assert out["before_text"] == []
    assert out["after_text"] and out["text"]
    s = load(fp_bundle)
    from edgepack.runtime.tokenizer import tokenizer_of
    from edgepack.runtime.llm_record import llm_record

    assert out["text"] == tokenizer_of(llm_record(s.manifest.report, s.path), s.path).decode(out["ids"])
    assert s.generate([2, 3, 4, 5], max_new_tokens=8).token_ids == out["ids"]


def test_an_empty_stop_text_is_refused(fp_bundle):
    from edgepack.runtime.errors import InputError

    with pytest.raises(InputError, match="stop text must not be empty"):
        load(fp_bundle).generate([2, 3], max_new_tokens=4, stop=[""])


def test_perplexity_of_a_device_file_says_it_is_not_a_regular_file(fp_bundle):
    from click.testing import CliRunner
    from edgepack.cli import cli

    result = CliRunner().invoke(cli, ["perplexity", fp_bundle, "--text", "/dev/null"])
    assert result.exit_code != 0 and "not a regular file" in result.output


def test_int4_quantizes_an_untied_embedding_table_too(tmp_path):
    """An untied model's embedding table is a Gather from its own table: it becomes a 4-bit
    GatherBlockQuantized lookup, and the bundle keeps no float table."""
    folder = llm_models.random_llama(str(tmp_path / "qwen"), tied=False, kv_heads=1, arch="qwen2", hidden=128,
                                     vocab=1024)
    fp, q4 = str(tmp_path / "fp.edgepack"), str(tmp_path / "q4.edgepack")
    package(folder, fp)
    r = package(folder, q4, quantize="int4-weight")
    q = r.report["quantization"]
    assert q["untied_embeddings_quantized"] == 1 and not q["tied_embedding_quantized"]
    assert q["quantized"]["embedding table (GatherBlockQuantized)"] == 1
    s = load(q4)
    names = {t.name: t for t in s.manifest.tensors}
    assert "model.embed_tokens.weight" not in names and names["model.embed_tokens.weight_Q4"].dtype == "uint8"
    assert q["perplexity"]["increase_pct"] < 10
    ids = s.generate([3, 4, 5], 8).token_ids
    assert len(ids) == 8 and ids == load(q4).generate([3, 4, 5], 8).token_ids
