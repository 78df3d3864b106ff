"""Findings F2 and F7 of the third security review (runtime/tokenizer_check.py, runtime/tokenizer_parts.py).

F2: a tokenizer.json could grow text without bound: a Replace of the EMPTY string passed the "no Replace
makes text longer" check yet inserts its content at every position (k of them in a Sequence: 2**k times the
text; 26 in a decoder aborted `edgepack generate` under a 2 GB cap), and a TemplateProcessing post-processor
could add millions of ids to any encoding (so could padding to a Fixed length or multiple of 2**27, which
aborted the process, and truncation with a stride just under max_length). F7: CPU time: a Split regex with
catastrophic backtracking (`a*a*a*(?=[^a])`: 10.7 s on 400 characters) and a WordPiece model with
max_input_chars_per_word = 10**9.

Each test asserts the typed refusal of a small instance of the attack instead of running it; the realistic
tokenizers at the end (GPT-2, Llama 2, Llama 3, BERT shapes, written by `tokenizers` itself) must still load,
encode and decode."""

import json

import pytest
from click.testing import CliRunner
from bundles import edit_manifest
from test_sec2_llm_record import tiny_lm

from edgepack.packager import package
from edgepack.runtime import tokenizer as tk
from edgepack.runtime.errors import InvalidManifest

EMPTY_REPLACE = {"type": "Replace", "pattern": {"String": ""}, "content": "a"}
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
GPT4O_SPLIT = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"])
DEEPSEEK_SPLIT = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                  r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BLOOM_SPLIT = " ?[^(\\s|[.,!?…。，、।۔،])]+"


def doc(model=None, **slots):
    base = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": None, "post_processor": None, "decoder": None,
            "model": model or {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1, "b": 2}, "unk_token": "<unk>"}}
    base.update(slots)
    return json.dumps(base)


# --- F2: growth ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("slot", ["normalizer", "decoder"])
def test_f2_an_empty_replace_is_refused(slot):
    seq = {"type": "Sequence", f"{slot}s": [EMPTY_REPLACE] * 3}
    with pytest.raises(InvalidManifest, match="Replace of the empty string"):
        tk.check_json(doc(**{slot: seq}), "b.edgepack")
    with pytest.raises(InvalidManifest, match="Replace of the empty string"):
        tk.check_json(doc(**{slot: EMPTY_REPLACE}), "b.edgepack")


def test_f2_a_sequence_is_checked_under_the_key_tokenizers_reads():
    # `tokenizers` reads a decoder Sequence's "decoders" and ignores other keys: an empty "normalizers" list
    # beside it once hid the bomb from the check
    hidden = {"type": "Sequence", "normalizers": [], "decoders": [EMPTY_REPLACE] * 3}
    with pytest.raises(InvalidManifest, match="Replace of the empty string"):
        tk.check_json(doc(decoder=hidden))
    with pytest.raises(InvalidManifest, match="without a list of components under 'normalizers'"):
        tk.check_json(doc(normalizer={"type": "Sequence", "decoders": []}))


def padding(strategy="BatchLongest", multiple=None):
    return {"strategy": strategy, "direction": "Right", "pad_to_multiple_of": multiple, "pad_id": 0,
            "pad_type_id": 0, "pad_token": "<unk>"}


def test_f2_padding_truncation_and_vocab_entries_are_bounded():
    tk.check_json(doc(padding=padding({"Fixed": 512}, 8),
                      truncation={"direction": "Right", "max_length": 512, "strategy": "LongestFirst", "stride": 0}))
    for pad in (padding({"Fixed": 2**27}), padding(multiple=2**27), padding("Longest")):  # 2**27 aborted
        with pytest.raises(InvalidManifest, match="padding is not null or a BatchLongest or Fixed"):
            tk.check_json(doc(padding=pad))
    overlapping = {"direction": "Right", "max_length": 2000, "strategy": "LongestFirst", "stride": 1999}
    with pytest.raises(InvalidManifest, match="stride of at most half"):   # 4000 words: 420 MB of windows
        tk.check_json(doc(truncation=overlapping))
    with pytest.raises(InvalidManifest, match="vocab has a token of more than 4096"):
        tk.check_json(doc(model={"type": "WordLevel", "vocab": {"<unk>": 0, "a" * 4097: 1}, "unk_token": "<unk>"}))
    with pytest.raises(InvalidManifest, match="vocab has a token of more than 4096"):
        tk.check_json(doc(model={"type": "Unigram", "vocab": [["a" * 4097, -1.0]], "unk_id": 0}))
    with pytest.raises(InvalidManifest, match="added_tokens"):
        tk.check_json(doc(added_tokens=[{"id": 3, "content": "a" * 4097, "special": True}]))


def test_f2_a_chain_of_lengthening_normalizers_is_refused():
    # NFKC can make a character 18 (U+FDFA), ByteLevel 4: 18 * 4 * 4 > 256; one of each is what real files use
    tk.check_json(doc(normalizer={"type": "NFKC"}, pre_tokenizer={"type": "ByteLevel"}))
    chain = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "ByteLevel"}]}
    with pytest.raises(InvalidManifest, match="times longer"):
        tk.check_json(doc(normalizer=chain, pre_tokenizer={"type": "ByteLevel"}))
    with pytest.raises(InvalidManifest, match="more than 64 components"):
        tk.check_json(doc(normalizer={"type": "Sequence", "normalizers": [{"type": "Strip"}] * 65}))


def template(single, pair=None, special=None):
    return {"type": "TemplateProcessing", "single": single, "pair": pair if pair is not None else single,
            "special_tokens": special if special is not None else {"X": {"id": "X", "ids": [1], "tokens": ["a"]}}}


X = {"SpecialToken": {"id": "X", "type_id": 0}}
A = {"Sequence": {"id": "A", "type_id": 0}}
B = {"Sequence": {"id": "B", "type_id": 1}}


def test_f2_template_processing_is_bounded():
    tk.check_json(doc(post_processor=template([X, A], [X, A, X, B])))
    big = {"X": {"id": "X", "ids": [1] * 100, "tokens": ["a"] * 100}}   # the attack: 2000 ids x 1000 refs
    with pytest.raises(InvalidManifest, match="stand for 1 to 64 ids"):
        tk.check_json(doc(post_processor=template([X] * 10 + [A], special=big)))
    with pytest.raises(InvalidManifest, match="at most 64 pieces"):
        tk.check_json(doc(post_processor=template([X] * 65 + [A])))
    with pytest.raises(InvalidManifest, match="repeats sequence A"):
        tk.check_json(doc(post_processor=template([A, A])))
    with pytest.raises(InvalidManifest, match="special token it defines"):
        tk.check_json(doc(post_processor=template([{"SpecialToken": {"id": "Y", "type_id": 0}}, A])))
    many = {"X": {"id": "X", "ids": [1] * 64, "tokens": ["a"] * 64}}
    seq = {"type": "Sequence", "processors": [template([X] * 5 + [A], special=many)]}
    with pytest.raises(InvalidManifest, match="adds up to 320 special token ids"):
        tk.check_json(doc(post_processor=seq))


def test_f2_generate_on_a_decoder_bomb_is_one_error_line(tmp_path):
    pytest.importorskip("tokenizers")
    from edgepack.cli import cli

    plain = tmp_path / "lm.edgepack"
    package(tiny_lm(), plain)
    tok = doc(decoder={"type": "Sequence", "decoders": [EMPTY_REPLACE] * 3})  # 40 aborted the process
    bomb = tmp_path / "tokbomb.edgepack"
    bomb.write_bytes(edit_manifest(plain.read_bytes(), lambda m: m.update(report={"llm": {
        "context_length": 64, "eos_token_ids": [], "tokenizer": {"tokenizer.json": tok}}})))
    res = CliRunner().invoke(cli, ["generate", str(bomb), "--prompt-ids", "1,2", "--max-new-tokens", "3"])
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: ") and "empty string" in lines[0], lines


# --- F7: time -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [
    "a*a*a*(?=[^a])", "(a+)+$", r"\s+\s*x", "(?:ab|c*)*d", "a{2,}a+",
    # the same, spelled so that no two atoms are the same text (a*[a]*(?:a)*(?=[^a]): 4.3 s on 300 characters)
    "a*[a]*(?:a)*(?=[^a])", "a*[a]*(?=[^a])", "a{0,999}[a]{0,999}(?=[^a])", r"[\s\S]*[\S\s]*(?=\x00)",
    "(?:a*[a]*)(?=b)", "a*b?[a]*c", "(?:aa?)*c", "(?:a|a)*c", "(?:a|a)" * 20 + "(?=[^a])", r"(a)\1", "(" * 500])
def test_f7_catastrophic_split_regexes_are_refused(pattern):
    split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
    with pytest.raises(InvalidManifest, match="grows as a power of the text's length"):
        tk.check_json(doc(pre_tokenizer=split))


@pytest.mark.parametrize("pattern", [LLAMA3_SPLIT, GPT2_SPLIT, GPT4O_SPLIT, DEEPSEEK_SPLIT, BLOOM_SPLIT,
                                     r"\p{N}{1,3}", r"\(a+\)+", "[(]a+[)]*", "(?:[)]a)+", r"(?i)(?<w>\p{L}+)"])
def test_f7_real_split_regexes_pass_the_shape_check(pattern):
    tk.check_json(doc(pre_tokenizer={"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
                                     "invert": False}))


@pytest.mark.parametrize("model, match", [
    ({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
      "max_input_chars_per_word": 10**9, "vocab": {"[UNK]": 0, "a": 1}}, "max_input_chars_per_word"),
    ({"type": "Weird", "vocab": {}}, "model type 'Weird'"),
    ({"type": "BPE", "vocab": {}, "merges": [], "unk_token": "u" * 300}, "unk_token"),
    ({"type": "BPE", "vocab": {}, "merges": [], "continuing_subword_prefix": "#" * 17}, "continuing_subword"),
    ({"type": "BPE", "vocab": [], "merges": []}, "vocab is not an object"),
    ({"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}, "unk_id"),
])
def test_f7_the_model_object_is_checked(model, match):
    with pytest.raises(InvalidManifest, match=match):
        tk.check_json(doc(model=model))


# --- real tokenizers, as `tokenizers` writes them, still load -------------------------------------------------

TEXT = "Hello world! The quick brown fox's 123 jumps,\n\n  over the lazy dog. Ünïcode ✓ too.\n"


def _trained(kind):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "bert":
        tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator([TEXT], trainers.WordPieceTrainer(vocab_size=200, special_tokens=[
            "[UNK]", "[CLS]", "[SEP]"]))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        tok.enable_truncation(512)
        tok.enable_padding(pad_token="[UNK]", pad_to_multiple_of=8)
        return tok
    if kind == "llama2":
        tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
        tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=310, special_tokens=specials))
    else:
        tok = tokenizers.Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=kind == "gpt2")
        tok.pre_tokenizer = byte_level if kind == "gpt2" else pre_tokenizers.Sequence([
            pre_tokenizers.Split(tokenizers.Regex(GPT4O_SPLIT if kind == "gpt4o" else LLAMA3_SPLIT),
                                 "isolated"), byte_level])
        if kind == "qwen":
            tok.normalizer = normalizers.NFC()
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator([TEXT], trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1",
                                        special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), bos]) \
        if kind == "llama3" else (processors.ByteLevel() if kind == "gpt2" else bos)
    return tok


@pytest.mark.parametrize("kind", ["gpt2", "llama2", "llama3", "qwen", "gpt4o", "bert"])
def test_real_tokenizer_shapes_still_load(kind):
    raw = _trained(kind)
    tok = tk.Tokenizer(raw.to_str())
    ids = tok.encode(TEXT)
    assert ids == raw.encode(TEXT).ids and len(ids) > 5
    if kind != "bert":  # WordPiece decoding lowercases and respaces; the others give the text back
        assert TEXT.strip() in tok.decode(ids)
