"""Findings F1/F2 of the second security review: a bundle's tokenizer.json is handed to the Rust `tokenizers`
library, which aborts the process when a decoder blows text up past the memory cap and panics
(pyo3 PanicException, not an Exception) on some regular expressions. The runtime must refuse such a file
with InvalidManifest before `tokenizers` runs it, and turn any panic into the same typed error."""

import json

import pytest

from edgepack import EdgepackError
from edgepack.runtime.errors import InvalidManifest

tokenizers = pytest.importorskip("tokenizers")
from edgepack.runtime import tokenizer as tk  # noqa: E402


def word_level(decoder=None, normalizer=None, vocab=None):
    vocab = vocab or {w: i for i, w in enumerate(["<unk>", "a", "b", "ab", "aa"])}
    return json.dumps({"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                       "normalizer": normalizer, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
                       "decoder": decoder, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}})


def test_expanding_replace_decoder_is_refused_before_tokenizers_sees_it():
    # each "a" would decode to 1 MiB: 2 GB for one token of 2000 a's, and a SIGABRT under a memory cap
    bomb = {"type": "Replace", "pattern": {"String": "a"}, "content": "x" * (1 << 20)}
    with pytest.raises(InvalidManifest, match="Replace that makes text longer"):
        tk.Tokenizer(word_level(decoder=bomb), "b.edgepack")
    with pytest.raises(InvalidManifest, match="Replace that makes text longer"):
        tk.Tokenizer(word_level(normalizer={"type": "Sequence", "normalizers": [bomb]}), "b.edgepack")


def test_unknown_component_types_and_oversized_json_are_refused():
    with pytest.raises(InvalidManifest, match="decoder type 'Weird'"):
        tk.check_json(word_level(decoder={"type": "Weird"}))
    with pytest.raises(InvalidManifest, match="adds 64 characters"):
        tk.check_json(word_level(normalizer={"type": "Prepend", "prepend": "p" * 64}))
    with pytest.raises(InvalidManifest, match="not JSON"):
        tk.check_json("{nope")
    with pytest.raises(InvalidManifest, match="more than"):
        tk.check_json(" " * (tk.MAX_JSON_BYTES + 1))


def test_regex_in_a_replace_is_refused():
    evil = {"type": "Replace", "pattern": {"Regex": "(a|aa)+$"}, "content": "x"}
    with pytest.raises(InvalidManifest, match="regular expression"):
        tk.Tokenizer(word_level(decoder=evil))


def test_a_panic_in_tokenizers_becomes_a_typed_error():
    # this file is refused by check_json; here it goes to `tokenizers` directly to get a real panic
    vocab = {"a" * 40 + "!" * (i + 1): i for i in range(4)}
    raw = tokenizers.Tokenizer.from_str(word_level(
        decoder={"type": "Replace", "pattern": {"Regex": "(a|aa)+$"}, "content": "x"}, vocab=vocab))
    with pytest.raises(EdgepackError, match="failed to decode"):
        tk._guard("b.edgepack", "decode", lambda: raw.decode([0, 1, 2]))


def test_decoded_text_per_token_is_bounded(monkeypatch):
    long_token = word_level(vocab={"<unk>": 0, "x" * (tk.MAX_TEXT_PER_TOKEN + 1): 1})
    with pytest.raises(InvalidManifest, match="vocab has a token of more than"):   # refused at load since sec3
        tk.Tokenizer(long_token)
    monkeypatch.setattr(tk, "check_json", lambda *args: None)   # decode() still bounds what gets past it
    with pytest.raises(InvalidManifest, match="per token"):
        tk.Tokenizer(long_token).decode([1])


def test_streaming_decode_matches_a_full_decode():
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    text = "héllo wörld — ünïcode ✓ text, two words " * 3
    bpe.train_from_iterator([text], tokenizers.trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    tok = tk.Tokenizer(bpe.to_str())
    ids = tok.encode(text)
    stream = tk.Streamer(tok)
    assert "".join(stream.add(i) for i in ids) == tok.decode(ids) == text
    assert stream.prefix > 0  # the window moved: later steps do not decode from the start
