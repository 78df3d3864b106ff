"""What parsing a manifest's JSON will cost in memory, bounded before json.loads runs.

json.loads turns a few bytes of JSON into a Python object of 30 to 200 bytes: 60 MiB of `["abcdefg",...]`
parsed into 8.2 times its size. `parse_cost` is an upper bound on what the parse allocates beyond the JSON
bytes themselves (the decoded text, every object, the decoder's key memo), computed from the bytes in one
pass; `loads` (runtime/manifest.py) refuses a manifest whose bound exceeds MANIFEST_COST_RATIO times its
size, or MANIFEST_FREE_COST for a small one (docs/FORMAT.md, "Manifest": what parsing costs).

The bound comes from counts of the JSON's bytes (`bytes.count`, no parse): a `{`, `[`, `,`, `:` or `"` inside a
string is counted as if it were structure, and every key as if it were new, which only raises the bound. The
sizes are CPython's (3.11, 64-bit), rounded up to pymalloc's 16-byte alignment; `benchmarks/manifest_memory.py`
measures a parse of every shape against the bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

STR_HEADER = 80       # a str of ASCII characters: 49 bytes + its characters, aligned, or malloc's 16-byte chunk
WIDE_STR_HEADER = 112 # header for a long one; with a character past U+007F: 72 + 4 (NUL), the same
NUMBER = 32           # an int below 2**60 (28 or 32 bytes) or a float (24)
DICT = 144            # a dict of n >= 1 members takes at most DICT + MEMBER * n bytes (measured up to n = 5,000:
MEMBER = 40           # 184 for 1 to 5 members, 272 for 6, then under 38 per member); an empty one 64
LIST = 104            # a list: 56 bytes and up to 6 spare slots
SLOT = 18             # a list element: an 8-byte pointer, an eighth more for the list's overallocation, and as
                      # much again while a growing list is copied to its larger array (measured: 14 with floats)
KEY_MEMO = 40         # the decoder's memo entry for each distinct key

# A number of 19 or more digits may be an int of 36 bytes or more (up to 4,300 digits, Python's limit): found
# as a `[`, `,`, `:` or whitespace then 19 digits or minus signs, in a copy of the bytes mapped to three classes.
_NUMBER_CLASSES = bytes(ord("0") if chr(b) in "0123456789-" else ord("[") if chr(b) in "[,: \t\n\r" else ord("x")
                        for b in range(256))
_LONG_NUMBER = b"[" + b"0" * 19
_CONTINUATION = bytes(range(0x80, 0xC0))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB]")
_WIDE_ESCAPE = re.compile(rb"\\u(?!00)")


def char_width(data: bytes | bytearray) -> int:
    """An upper bound on the bytes per character of the strings parsing `data` makes (CPython stores a string
    in 1, 2 or 4 bytes per character, by its widest one): 4 with any 4-byte UTF-8 sequence or escaped
    surrogate, 2 with characters past U+00FF, else 1."""
    if data.isascii():
        if b"\\u" not in data:
            return 1
        return 4 if _SURROGATE_ESCAPE.search(data) else 2 if _WIDE_ESCAPE.search(data) else 1
    top = max(data)
    if top >= 0xF0 or _SURROGATE_ESCAPE.search(data):
        return 4
    return 2 if top >= 0xC4 or _WIDE_ESCAPE.search(data) else 1


def parse_cost(data: bytes | bytearray, width: int, known_keys: Iterable[str] = (), enough: int = 0) -> int:
    """An upper bound on the bytes json.loads (with manifest.loads's object_hook) allocates to parse `data`,
    from counts of its bytes: the decoded text; a dict per `{`, a list per `[`, a list slot per value (each
    `,`, `[` or `{`, and the first); a number per `,` and the first value; a str per pair of quotes, holding
    up to every byte of the JSON; and per `:` (a dict member) its dict entry and the decoder's memo entry
    for its key. Every key costs a str and a memo entry, except repeated occurrences of `known_keys` (the
    schema's): the decoder memoizes keys, so those cost one each. Those are counted only while the bound is
    over `enough` (the limit it is checked against): a small manifest needs no more passes over its bytes."""
    chars = len(data) if data.isascii() else len(data.translate(None, _CONTINUATION))
    dicts, lists, commas, colons = data.count(b"{"), data.count(b"["), data.count(b","), data.count(b":")
    header = STR_HEADER if width == 1 else WIDE_STR_HEADER
    strings = (data.count(b'"') + 1) // 2
    cost = (width * chars + DICT * dicts + LIST * lists + SLOT * (commas + dicts + lists + 1)
            + NUMBER * (commas + 1) + header * strings + width * len(data) + (MEMBER + KEY_MEMO) * colons)
    cost += len(data) if _LONG_NUMBER in data.translate(_NUMBER_CLASSES) else 0
    if cost - (header + KEY_MEMO) * data.count(b'":') > enough:  # no discount can bring it within
        return cost
    escapes = b'\\"' in data
    for key in known_keys:
        if cost <= enough:
            break
        # `"key":` ends a key; the key is `key` itself unless its opening quote is escaped (`\\"key":`, counted
        # apart, which also drops a few that are `key`: the discount only shrinks).
        pattern = f'"{key}":'.encode()
        repeats = data.count(pattern) - (data.count(b"\\" + pattern) if escapes else 0) - 1
        if repeats > 0:
            cost -= repeats * (header + KEY_MEMO)
    return cost


def escaped_colons(data: bytes | bytearray) -> int:
    """The colons written as `\\u003a` escapes in the strings of `data` (string_colons counts them once parsed,
    so a duplicate key could otherwise hide behind them). A `\\u003a` after an escaped backslash (`\\\\u003a`)
    is text: taking every `\\\\` out first, left to right as JSON pairs them, leaves one backslash of each odd
    run, before the byte that followed it. Linear, in C; at most one copy of the bytes, which parsing has just
    freed the decoded text of (no regular expression: a repeated group keeps a backtracking frame per repeat,
    32 times a manifest of backslashes)."""
    if b"\\u003" not in data:
        return 0
    if b"\\\\" in data:
        data = data.replace(b"\\\\", b"")
    return data.count(b"\\u003a") + data.count(b"\\u003A")


def string_colons(value: Any) -> int:
    """The colons inside the keys and strings of a parsed JSON value (without recursion): the `:` bytes of
    its text that are not member separators."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                count += k.count(":")
                if isinstance(x, str):
                    count += x.count(":")
                elif isinstance(x, (dict, list)):
                    stack.append(x)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, str):
                    count += x.count(":")
                elif isinstance(x, (dict, list)):
                    stack.append(x)
    return count
