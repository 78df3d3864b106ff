"""Text for language-model bundles: the tokenizer that ships in the bundle (report["llm"]["tokenizer"]),
read with the optional `tokenizers` package (pip install 'edgepack[text]'). Token ids work without it."""

from __future__ import annotations

from typing import Any, Sequence

from .errors import InputError, MissingDependency


class Tokenizer:
    """Encode and decode with the bundle's tokenizer.json."""

    def __init__(self, tokenizer_json: str):
        try:
            import tokenizers
        except ImportError as e:
            raise MissingDependency("text in and out of a language model (token ids work without it)",
                                    "text", "tokenizers") from e
        self._tok: Any = tokenizers.Tokenizer.from_str(tokenizer_json)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))


def tokenizer_of(llm: dict[str, Any], path: str) -> Tokenizer:
    """The tokenizer a bundle's report["llm"] carries, or InputError saying there is none."""
    files = llm.get("tokenizer") or {}
    if "tokenizer.json" not in files:
        raise InputError(f"{path}: the bundle carries no tokenizer.json; pass token ids instead of text, or "
                         "package the model with its tokenizer.json beside it")
    return Tokenizer(files["tokenizer.json"])
