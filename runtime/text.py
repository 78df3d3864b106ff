"""Text for one-line messages: shortened at a word boundary, never mid-word."""

from __future__ import annotations


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def counted(n: int, word: str, plural: str | None = None) -> str:
    """`n` and `word`, in the plural (`plural`, or `word` + "s") unless n is 1: "1 sample", "3 samples"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def clip(text: object, limit: int) -> str:
    """`text` on one line, at most about `limit` characters: cut at the last space before the limit (or, in one
    long word, at the last separator), with "..." marking the cut."""
    line = one_line(text)
    if len(line) <= limit:
        return line
    head = line[:limit]
    cut = head.rfind(" ")
    if cut < limit // 2:  # one long word (a path, a tensor name): cut after a separator inside it instead
        cut = max(head.rfind(c) for c in "/\\,;:_.-") + 1
    if cut < limit // 2:
        cut = limit
    return head[:cut].rstrip(" ,;:") + " ..."


def error_line(e: object, limit: int = 300, *, last: bool = False) -> str:
    """One line of an exception for a one-line error message: its first non-blank line (with `last`, its last
    one: onnxruntime puts the point of its long messages there), clipped to about `limit` characters; the
    exception type's name when the message is empty."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return clip(lines[-1] if last else lines[0], limit)
