"""check_json: what a bundle's tokenizer.json must be before the `tokenizers` library sees it.

The file comes from the bundle, so it is hostile input to a Rust library that aborts the process when it runs
out of memory. check_json bounds its size and allows only the component types that real Llama / Qwen /
Mistral / GPT-2 / BERT tokenizers use, and bounds what they can do to the length of a text:

- no step adds more than a few characters (a Replace whose content is longer than its pattern, a Replace of
  the empty string, which inserts its content at every position, a long Prepend);
- the steps that may lengthen text by a factor (Unicode normalization, lowercasing, ByteLevel, a Precompiled
  charsmap) multiply to at most MAX_CHAIN_GROWTH over the normalizer and pre-tokenizer (encode) and over the
  decoder (decode), so no Sequence of them grows text exponentially;
- the post-processor copies the text at most once (each of sequences A and B at most once per template) and
  adds at most tokenizer_parts.MAX_ADDED_IDS special ids;
- regular expressions only where they split (a Split pre-tokenizer), bounded in length and refused in the
  catastrophic-backtracking shapes tokenizer_regex.regex_problem names;
- the model is BPE, WordPiece, WordLevel or Unigram, with WordPiece's max_input_chars_per_word bounded and
  no vocab entry or added token longer than tokenizer_parts.MAX_VOCAB_CHARS;
- padding is BatchLongest or to a bounded Fixed length or multiple, and truncation's stride is at most half
  its max_length (tokenizer_parts.options_problem).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from .errors import InvalidManifest
from .tokenizer_parts import MAX_ADDED_IDS, model_problem, options_problem, post_processor_added
from .tokenizer_regex import regex_problem

MAX_JSON_BYTES = 64 << 20        # real tokenizer.json files are 2-17 MB (Llama 3: 9 MB, Qwen 2.5: 7 MB)
MAX_REGEX_CHARS = 512            # the GPT-4 / Llama 3 / Qwen split pattern is under 200 characters
MAX_GROWTH_CHARS = 4             # what one Prepend may add ("▁")
MAX_CHAIN_GROWTH = 256           # product of the length factors of the encode or the decode steps
MAX_COMPONENTS = 64              # components in all Sequences of one slot

_ALLOWED = {
    "normalizer": {"Sequence", "Prepend", "Replace", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip",
                   "StripAccents", "BertNormalizer", "Precompiled", "ByteLevel"},
    "pre_tokenizer": {"Sequence", "ByteLevel", "Split", "Metaspace", "Digits", "Whitespace", "WhitespaceSplit",
                      "Punctuation", "BertPreTokenizer", "UnicodeScripts", "CharDelimiterSplit"},
    "decoder": {"Sequence", "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace", "WordPiece",
                "BPEDecoder"},
    "post_processor": {"Sequence", "TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing"},
}
# The key of a Sequence's list in each slot: `tokenizers` reads only that one and ignores other keys, so
# the check must read the same one (a decoder Sequence with an empty "normalizers" list hid its "decoders").
_LIST_KEY = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers", "decoder": "decoders",
             "post_processor": "processors"}
# How many times longer (in characters) one step can make a text, where that is more than once: Unicode's
# worst expansions (NFD 4, NFKC/NFKD 18: U+FDFA), lowercasing (a character into up to 3), a CJK character
# padded with spaces (BertNormalizer), a character into its UTF-8 bytes (ByteLevel). Precompiled: its own.
_FACTORS = {"NFD": 4, "NFC": 3, "NFKC": 18, "NFKD": 18, "Lowercase": 3, "BertNormalizer": 3, "ByteLevel": 4}


def _refuse(path: str, problem: str) -> InvalidManifest:
    return InvalidManifest(path, f"tokenizer.json: {problem}; package the model with its original tokenizer")


def _charsmap_factor(path: str, comp: dict[str, Any]) -> int:
    """The longest string a Precompiled (SentencePiece) charsmap maps one character to: the blob is a u32
    trie size, the trie, then the replacement strings, each ending in a NUL."""
    raw = comp.get("precompiled_charsmap")
    if raw is None or raw == "":
        return 1
    try:
        blob = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
    except (binascii.Error, ValueError):
        blob = None
    if blob is None or len(blob) < 4:
        raise _refuse(path, "a Precompiled normalizer's precompiled_charsmap is not base64 of a charsmap")
    strings = blob[4 + int.from_bytes(blob[:4], "little"):]
    return max([len(s) for s in strings.split(b"\0")] + [1])


def _check_pattern(path: str, slot: str, kind: str, comp: dict[str, Any]) -> None:
    pattern = comp.get("pattern")
    if pattern is None:
        if kind == "Replace":
            raise _refuse(path, f"a {slot} Replace without a pattern")
        return
    if not isinstance(pattern, dict) or len(pattern) != 1:
        raise _refuse(path, f"a {slot} {kind} pattern is not {{'String': ...}} or {{'Regex': ...}}")
    (how, text), = pattern.items()
    if not isinstance(text, str) or how not in ("String", "Regex"):
        raise _refuse(path, f"a {slot} {kind} pattern is not {{'String': ...}} or {{'Regex': ...}}")
    if how == "Regex":
        if kind != "Split" or len(text) > MAX_REGEX_CHARS:
            raise _refuse(path, f"a regular expression in a {slot} {kind} (only a Split pre-tokenizer may have "
                          f"one, of at most {MAX_REGEX_CHARS} characters)")
        problem = regex_problem(text)
        if problem:
            raise _refuse(path, f"the {slot} Split regular expression {text[:60]!r} {problem}, which can take "
                          "time that grows as a power of the text's length or faster")
    if kind == "Replace":
        content = comp.get("content")
        if text == "":
            raise _refuse(path, f"a {slot} Replace of the empty string (it inserts its content at every "
                          "position of the text)")
        if not isinstance(content, str) or len(content) > len(text):
            raise _refuse(path, f"a {slot} Replace that makes text longer ({len(text)} characters into "
                          f"{len(content) if isinstance(content, str) else '?'})")


def _check_component(path: str, slot: str, comp: Any, count: list[int]) -> int:
    """Check one component (recursively for a Sequence); its length factor."""
    if comp is None:
        return 1
    if not isinstance(comp, dict) or not isinstance(comp.get("type"), str):
        raise _refuse(path, f"the {slot} is not an object with a string 'type'")
    count[0] += 1
    if count[0] > MAX_COMPONENTS:
        raise _refuse(path, f"the {slot} has more than {MAX_COMPONENTS} components")
    kind = comp["type"]
    if kind not in _ALLOWED[slot]:
        raise _refuse(path, f"{slot} type {kind[:40]!r} is not one edgepack accepts "
                      f"(accepted: {', '.join(sorted(_ALLOWED[slot]))})")
    if kind == "Sequence":
        inner = comp.get(_LIST_KEY[slot])
        if not isinstance(inner, list):
            raise _refuse(path, f"a {slot} Sequence without a list of components under "
                          f"'{_LIST_KEY[slot]}'")
        return math.prod(_check_component(path, slot, c, count) for c in inner)
    _check_pattern(path, slot, kind, comp)
    for key in ("prepend", "content", "replacement", "prefix", "suffix"):
        value = comp.get(key)
        if isinstance(value, str) and len(value) > MAX_GROWTH_CHARS and kind != "Replace":
            raise _refuse(path, f"a {slot} {kind} adds {len(value)} characters ({key}); at most "
                          f"{MAX_GROWTH_CHARS} are accepted")
    if kind == "Precompiled":
        return _charsmap_factor(path, comp)
    return _FACTORS.get(kind, 1) if slot != "decoder" else 1


def _check_growth(path: str, what: str, factor: int) -> None:
    if factor > MAX_CHAIN_GROWTH:
        raise _refuse(path, f"its {what} steps can make a text {factor} times longer (more than the "
                      f"{MAX_CHAIN_GROWTH} accepted)")


def check_json(tokenizer_json: str, path: str = "bundle") -> None:
    """Raise InvalidManifest unless `tokenizer_json` is one that `tokenizers` can be handed safely."""
    if not isinstance(tokenizer_json, str):
        raise _refuse(path, f"it is a {type(tokenizer_json).__name__}, not a string")
    if len(tokenizer_json) > MAX_JSON_BYTES:
        raise _refuse(path, f"{len(tokenizer_json)} characters, more than the {MAX_JSON_BYTES} accepted")
    try:
        doc = json.loads(tokenizer_json)
    except (ValueError, RecursionError) as e:
        raise _refuse(path, f"not JSON ({str(e)[:80]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise _refuse(path, "not a tokenizer (no 'model' object)")
    factors = {slot: _check_component(path, slot, doc.get(slot), [0]) for slot in _ALLOWED}
    _check_growth(path, "normalizer and pre-tokenizer", factors["normalizer"] * factors["pre_tokenizer"])
    _check_growth(path, "decoder", factors["decoder"])
    if isinstance(doc.get("post_processor"), dict):
        problem, added = post_processor_added(doc["post_processor"])
        if problem:
            raise _refuse(path, problem)
        if added > MAX_ADDED_IDS:
            raise _refuse(path, f"its post-processor adds up to {added} special token ids to an encoding (at "
                          f"most {MAX_ADDED_IDS} are accepted)")
    problem = model_problem(doc["model"]) or options_problem(doc)
    if problem:
        raise _refuse(path, problem)
