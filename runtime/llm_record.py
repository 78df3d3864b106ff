"""The report["llm"] record of a language-model bundle, checked before generation uses it.

The report is part of the signed manifest but written by whoever made the bundle: every field generate()
reads is checked for its type here, so a malformed record is one InvalidManifest naming the field, not an
AttributeError or TypeError deep in the generation loop. Fields (all optional): context_length (int > 0),
eos_token_ids (list of ints >= 0), bos_token_id (int or null), architecture (str), tokenizer (object of file
name -> text; its tokenizer.json is checked further by tokenizer.check_json when text is used).
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidManifest

MAX_TOKEN_ID = 1 << 31


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def llm_record(report: dict[str, Any], path: str) -> dict[str, Any]:
    """report["llm"] ({} when absent), or InvalidManifest naming the first field of the wrong type."""
    llm = report.get("llm")
    if llm is None:
        return {}

    def bad(field: str, want: str) -> InvalidManifest:
        return InvalidManifest(path, f"report.llm{field} must be {want}; repackage the model")

    if not isinstance(llm, dict):
        raise bad("", "an object")
    context = llm.get("context_length")
    if context is not None and (not _int(context) or not 0 < context <= MAX_TOKEN_ID):
        raise bad(".context_length", f"a positive integer (at most {MAX_TOKEN_ID})")
    eos = llm.get("eos_token_ids", [])
    if not isinstance(eos, list) or len(eos) > 1024 or not all(_int(e) and 0 <= e < MAX_TOKEN_ID for e in eos):
        raise bad(".eos_token_ids", "a list of token ids (non-negative integers)")
    bos = llm.get("bos_token_id")
    if bos is not None and not (_int(bos) and 0 <= bos < MAX_TOKEN_ID):
        raise bad(".bos_token_id", "a token id or null")
    if not isinstance(llm.get("architecture", ""), str):
        raise bad(".architecture", "a string")
    tokenizer = llm.get("tokenizer", {})
    if tokenizer is None:
        tokenizer = {}
    if not isinstance(tokenizer, dict) or not all(isinstance(v, str) for v in tokenizer.values()):
        raise bad(".tokenizer", "an object of file name -> file text (tokenizer.json: a JSON string)")
    return llm
