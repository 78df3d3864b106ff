"""Checks of the parts of a tokenizer.json that cost time or multiply output rather than grow it by a few
characters: the `model` object, padding and truncation, and the post-processor's templates (a Split
pre-tokenizer's regular expression: tokenizer_regex). tokenizer_check.check_json calls them; each returns a
problem (a short phrase) or None."""

from __future__ import annotations

from typing import Any

MAX_WORD_CHARS = 200             # WordPiece max_input_chars_per_word (Hugging Face's default: 100); cubic
MAX_AFFIX_CHARS = 16             # continuing_subword_prefix ("##"), end_of_word_suffix ("</w>")
MAX_TOKEN_CHARS = 256            # an unk_token or a special token's name
MAX_TEMPLATE_PIECES = 64         # pieces of one single/pair template (Llama 3's pair template has 4)
MAX_SPECIAL_IDS = 64             # ids one special token of a template stands for (real ones: 1)
MAX_ADDED_IDS = 256              # special ids a whole post-processor may add to one encoding
MAX_VOCAB_CHARS = 4096           # one vocab entry or added token (tokenizer.MAX_TEXT_PER_TOKEN; real: < 300)
MAX_PAD_IDS = 1 << 17            # padding's Fixed length and pad_to_multiple_of (Llama 3.1's context)
MODELS = ("BPE", "WordPiece", "WordLevel", "Unigram")


def _is_short_str(value: Any, limit: int, optional: bool = True) -> bool:
    return (optional and value is None) or (isinstance(value, str) and len(value) <= limit)


def model_problem(model: dict[str, Any]) -> str | None:
    """What is wrong with the tokenizer's `model` object, or None."""
    kind = model.get("type")
    if kind not in MODELS:
        return f"model type {str(kind)[:40]!r} is not one edgepack accepts (accepted: {', '.join(MODELS)})"
    if not _is_short_str(model.get("unk_token"), MAX_TOKEN_CHARS):
        return f"the {kind} model's unk_token is not a string of at most {MAX_TOKEN_CHARS} characters"
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if not _is_short_str(model.get(key), MAX_AFFIX_CHARS):
            return f"the {kind} model's {key} is not a string of at most {MAX_AFFIX_CHARS} characters"
    for key in ("fuse_unk", "byte_fallback", "ignore_merges"):
        if model.get(key) is not None and not isinstance(model[key], bool):
            return f"the {kind} model's {key} is not true or false"
    if kind == "WordPiece":
        most = model.get("max_input_chars_per_word", 100)
        if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MAX_WORD_CHARS:
            return (f"the WordPiece model's max_input_chars_per_word is {str(most)[:20]} (at most "
                    f"{MAX_WORD_CHARS} is accepted; its cost grows with the cube of a word's length)")
    if kind == "BPE":
        dropout = model.get("dropout")
        if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                                    or not 0 <= dropout <= 1):
            return "the BPE model's dropout is not null or a number in [0, 1]"
    vocab = model.get("vocab")
    if not isinstance(vocab, list if kind == "Unigram" else dict):
        return f"the {kind} model's vocab is not {'a list' if kind == 'Unigram' else 'an object'}"
    pieces = vocab if isinstance(vocab, dict) else (e[0] for e in vocab if isinstance(e, list) and e)
    if max((len(p) if isinstance(p, str) else 0 for p in pieces), default=0) > MAX_VOCAB_CHARS:
        return (f"the {kind} model's vocab has a token of more than {MAX_VOCAB_CHARS} characters (decoding "
                "it repeatedly would make text without bound)")
    if kind == "Unigram":
        unk = model.get("unk_id")
        if unk is not None and (isinstance(unk, bool) or not isinstance(unk, int) or not 0 <= unk < len(vocab)):
            return "the Unigram model's unk_id is not null or an index into its vocab"
    return None


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def options_problem(doc: dict[str, Any]) -> str | None:
    """What is wrong with the tokenizer's added_tokens, padding or truncation, or None: padding to a Fixed
    length or a multiple makes every encoding that long (2**27 aborted the process), and truncation with a
    stride close to max_length copies the text into about len / (max_length - stride) overflowing windows."""
    added = doc.get("added_tokens")
    if added is not None and (not isinstance(added, list) or not all(
            isinstance(t, dict) and _is_short_str(t.get("content"), MAX_VOCAB_CHARS, False) for t in added)):
        return f"added_tokens is not a list of tokens whose content is at most {MAX_VOCAB_CHARS} characters"
    padding = doc.get("padding")
    if padding is not None:
        strategy = padding.get("strategy") if isinstance(padding, dict) else None
        fixed = strategy.get("Fixed") if isinstance(strategy, dict) else None
        multiple = padding.get("pad_to_multiple_of") if isinstance(padding, dict) else None
        if not (isinstance(padding, dict) and (strategy == "BatchLongest" or _int_in(fixed, 0, MAX_PAD_IDS))
                and (multiple is None or _int_in(multiple, 0, MAX_PAD_IDS))
                and _is_short_str(padding.get("pad_token"), MAX_TOKEN_CHARS, optional=False)):
            return (f"padding is not null or a BatchLongest or Fixed (at most {MAX_PAD_IDS} ids) strategy with "
                    f"pad_to_multiple_of null or at most {MAX_PAD_IDS} and a pad_token")
    truncation = doc.get("truncation")
    if truncation is not None:
        most = truncation.get("max_length") if isinstance(truncation, dict) else None
        stride = truncation.get("stride", 0) if isinstance(truncation, dict) else None
        if not isinstance(most, int) or not _int_in(most, 1, 1 << 62) or not _int_in(stride, 0, most // 2):
            return ("truncation is not null or a max_length of at least 1 with a stride of at most half of it "
                    "(a larger stride copies the text into many overlapping windows)")
    return None


def _template_problem(name: str, template: Any, special: dict[str, Any]) -> tuple[str | None, int]:
    """(problem or None, special ids the template adds)."""
    if not isinstance(template, list) or len(template) > MAX_TEMPLATE_PIECES:
        return f"the TemplateProcessing {name} template is not a list of at most {MAX_TEMPLATE_PIECES} pieces", 0
    added, seen = 0, []
    for piece in template:
        if not isinstance(piece, dict) or len(piece) != 1:
            return f"a TemplateProcessing {name} piece is not {{'SpecialToken': ...}} or {{'Sequence': ...}}", 0
        (how, body), = piece.items()
        ident = body.get("id") if isinstance(body, dict) else None
        if how == "Sequence" and ident in ("A", "B"):
            if ident in seen:
                return f"the TemplateProcessing {name} template repeats sequence {ident} (copies of the text)", 0
            seen.append(ident)
        elif how == "SpecialToken" and isinstance(ident, str) and ident in special:
            added += len(special[ident]["ids"])
        else:
            return f"a TemplateProcessing {name} piece is not a special token it defines or sequence A or B", 0
    return None, added


def _special_problem(special: Any) -> str | None:
    if not isinstance(special, dict) or len(special) > MAX_TEMPLATE_PIECES:
        return f"TemplateProcessing special_tokens is not an object of at most {MAX_TEMPLATE_PIECES} tokens"
    for name, token in special.items():
        ids = token.get("ids") if isinstance(token, dict) else None
        tokens = token.get("tokens") if isinstance(token, dict) else None
        if (len(name) > MAX_TOKEN_CHARS or not isinstance(ids, list) or not isinstance(tokens, list)
                or not 1 <= len(ids) <= MAX_SPECIAL_IDS or len(tokens) != len(ids)):
            return (f"TemplateProcessing special token {name[:40]!r} does not stand for 1 to {MAX_SPECIAL_IDS} "
                    "ids with one token each")
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids) or not all(
                _is_short_str(t, MAX_TOKEN_CHARS, optional=False) for t in tokens):
            return f"TemplateProcessing special token {name[:40]!r} has ids that are not ints >= 0 or bad tokens"
    return None


def post_processor_added(comp: dict[str, Any]) -> tuple[str | None, int]:
    """(problem or None, special ids at most added to one encoding) of a checked-type post-processor."""
    kind = comp["type"]
    if kind == "Sequence":
        total = 0
        for inner in comp.get("processors") or []:
            if isinstance(inner, dict):
                problem, added = post_processor_added(inner)
                if problem:
                    return problem, 0
                total += added
        return None, total
    if kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            pair = comp.get(key)
            if (not isinstance(pair, list) or len(pair) != 2 or not _is_short_str(pair[0], MAX_TOKEN_CHARS, False)
                    or isinstance(pair[1], bool) or not isinstance(pair[1], int)):
                return f"the {kind} post-processor's {key} is not [token, id]", 0
        return None, 4
    if kind != "TemplateProcessing":
        return None, 0
    special = comp.get("special_tokens")
    problem = _special_problem(special)
    if problem or not isinstance(special, dict):
        return problem or "TemplateProcessing special_tokens is not an object", 0
    most = 0
    for name in ("single", "pair"):
        problem, added = _template_problem(name, comp.get(name), special)
        if problem:
            return problem, 0
        most = max(most, added)
    return None, most
