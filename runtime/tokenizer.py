"""Text for language-model bundles: the tokenizer that ships in the bundle (report["llm"]["tokenizer"]),
read with the optional `tokenizers` package (pip install 'edgepack[text]'). Token ids work without it.

The tokenizer.json comes from the bundle, so it is hostile input to a Rust library that aborts the process
when it runs out of memory and panics on some regular expressions. Before `tokenizers` sees it, check_json
bounds its size and allows only the component types that real Llama / Qwen / Mistral / GPT-2 tokenizers
use, with no component that makes text longer than it was beyond a few characters (a Replace whose content
is longer than its pattern, a long Prepend), and regular expressions only where they split (a Split
pre-tokenizer), bounded in length. Every call into `tokenizers` turns its panics (pyo3 PanicException, a
BaseException) into InvalidManifest, and decode() refuses text longer than MAX_TEXT_PER_TOKEN per token.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from collections.abc import Callable, Sequence

from .errors import InputError, InvalidManifest, MissingDependency

MAX_JSON_BYTES = 64 << 20        # real tokenizer.json files are 2-17 MB (Llama 3: 9 MB, Qwen 2.5: 7 MB)
MAX_REGEX_CHARS = 512            # the GPT-4 / Llama 3 / Qwen split pattern is under 200 characters
MAX_GROWTH_CHARS = 4             # what one Prepend may add ("▁")
MAX_TEXT_PER_TOKEN = 4096        # characters one token may decode to

_ALLOWED = {
    "normalizer": {"Sequence", "Prepend", "Replace", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip",
                   "StripAccents", "BertNormalizer", "Precompiled", "ByteLevel"},
    "pre_tokenizer": {"Sequence", "ByteLevel", "Split", "Metaspace", "Digits", "Whitespace", "WhitespaceSplit",
                      "Punctuation", "BertPreTokenizer", "UnicodeScripts", "CharDelimiterSplit"},
    "decoder": {"Sequence", "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace", "WordPiece",
                "BPEDecoder"},
    "post_processor": {"Sequence", "TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing"},
}
_LISTS = ("normalizers", "pretokenizers", "decoders", "processors")

T = TypeVar("T")


def _refuse(path: str, problem: str) -> InvalidManifest:
    return InvalidManifest(path, f"tokenizer.json: {problem}; package the model with its original tokenizer")


def _check_component(path: str, slot: str, comp: Any) -> None:
    if comp is None:
        return
    if not isinstance(comp, dict) or not isinstance(comp.get("type"), str):
        raise _refuse(path, f"the {slot} is not an object with a string 'type'")
    kind = comp["type"]
    if kind not in _ALLOWED[slot]:
        raise _refuse(path, f"{slot} type {kind[:40]!r} is not one edgepack accepts "
                      f"(accepted: {', '.join(sorted(_ALLOWED[slot]))})")
    if kind == "Sequence":
        inner = next((comp[k] for k in _LISTS if k in comp), None)
        if not isinstance(inner, list):
            raise _refuse(path, f"a {slot} Sequence without a list of components")
        for c in inner:
            _check_component(path, slot, c)
        return
    pattern = comp.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, dict) or len(pattern) != 1:
            raise _refuse(path, f"a {slot} {kind} pattern is not {{'String': ...}} or {{'Regex': ...}}")
        (how, text), = pattern.items()
        if not isinstance(text, str) or how not in ("String", "Regex"):
            raise _refuse(path, f"a {slot} {kind} pattern is not {{'String': ...}} or {{'Regex': ...}}")
        if how == "Regex" and (kind != "Split" or len(text) > MAX_REGEX_CHARS):
            raise _refuse(path, f"a regular expression in a {slot} {kind} (only a Split pre-tokenizer may have "
                          f"one, of at most {MAX_REGEX_CHARS} characters)")
        if kind == "Replace":
            content = comp.get("content")
            if how != "String" or not isinstance(content, str) or len(content) > max(len(text), 1):
                raise _refuse(path, f"a {slot} Replace that makes text longer ({len(text)} characters into "
                              f"{len(content) if isinstance(content, str) else '?'})")
    for key in ("prepend", "content", "replacement", "prefix", "suffix"):
        value = comp.get(key)
        if isinstance(value, str) and len(value) > MAX_GROWTH_CHARS and kind != "Replace":
            raise _refuse(path, f"a {slot} {kind} adds {len(value)} characters ({key}); at most "
                          f"{MAX_GROWTH_CHARS} are accepted")


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
    for slot in _ALLOWED:
        _check_component(path, slot, doc.get(slot))


def _guard(path: str, what: str, call: Callable[[], T]) -> T:
    """call(), with a panic in `tokenizers` (pyo3_runtime.PanicException, a BaseException) or its errors
    turned into InvalidManifest."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:
        if isinstance(e, Exception) and not type(e).__module__.startswith(("tokenizers", "builtins")):
            raise
        raise InvalidManifest(path, f"tokenizer.json: the tokenizer failed to {what}: "
                              f"{type(e).__name__}: {str(e)[:120]}") from None


class Tokenizer:
    """Encode and decode with the bundle's tokenizer.json."""

    def __init__(self, tokenizer_json: str, path: str = "bundle"):
        try:
            import tokenizers
        except ImportError as e:
            raise MissingDependency("text in and out of a language model (token ids work without it)",
                                    "text", "tokenizers") from e
        check_json(tokenizer_json, path)
        self.path = path
        self._tok: Any = _guard(path, "load", lambda: tokenizers.Tokenizer.from_str(tokenizer_json))

    def encode(self, text: str) -> list[int]:
        return list(_guard(self.path, "encode", lambda: self._tok.encode(text).ids))

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        text = str(_guard(self.path, "decode", lambda: self._tok.decode(ids, skip_special_tokens=False)))
        if len(text) > MAX_TEXT_PER_TOKEN * max(1, len(ids)):
            raise InvalidManifest(self.path, f"tokenizer.json: {len(ids)} tokens decode to {len(text)} "
                                  f"characters, more than {MAX_TEXT_PER_TOKEN} per token")
        return text


class Streamer:
    """Decodes generated tokens one at a time without re-decoding the whole output each step: it decodes only
    the tokens since the last complete character (the text-generation-inference method), so a step costs
    the same however long the output is."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.ids: list[int] = []
        self.prefix = 0      # start of the window decoded each step
        self.read = 0        # tokens whose text was already given out

    def add(self, token: int) -> str:
        """The new text `token` completes ("" while it ends inside a character)."""
        self.ids.append(token)
        before = self.tok.decode(self.ids[self.prefix:self.read]) if self.read > self.prefix else ""
        after = self.tok.decode(self.ids[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""


def tokenizer_of(llm: dict[str, Any], path: str) -> Tokenizer:
    """The tokenizer a bundle's report["llm"] carries, or InputError saying there is none."""
    files = llm.get("tokenizer") or {}
    if "tokenizer.json" not in files:
        raise InputError(f"{path}: the bundle carries no tokenizer.json; pass token ids instead of text, or "
                         "package the model with its tokenizer.json beside it")
    return Tokenizer(files["tokenizer.json"], path)
