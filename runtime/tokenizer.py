"""Text for language-model bundles: the tokenizer that ships in the bundle (report["llm"]["tokenizer"]),
read with the optional `tokenizers` package (pip install 'edgepack[text]'). Token ids work without it.

The tokenizer.json comes from the bundle, so it is hostile input to a Rust library that aborts the process
when it runs out of memory and panics on some regular expressions. Before `tokenizers` sees it,
tokenizer_check.check_json bounds its size, its components and how much longer they can make a text (that
module's docstring lists the rules). Every call into `tokenizers` turns its panics (pyo3 PanicException, a
BaseException) into InvalidManifest, and decode() refuses text longer than MAX_TEXT_PER_TOKEN per token.
"""

from __future__ import annotations

from typing import Any, TypeVar
from collections.abc import Callable, Sequence

from .errors import InputError, InvalidManifest, MissingDependency
from .tokenizer_check import MAX_JSON_BYTES, check_json

MAX_TEXT_PER_TOKEN = 4096        # characters one token may decode to

T = TypeVar("T")
__all__ = ["MAX_JSON_BYTES", "MAX_TEXT_PER_TOKEN", "Streamer", "Tokenizer", "check_json", "tokenizer_of"]


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
