r"""regex_problem: whether a Split pre-tokenizer's regular expression can backtrack for a time that grows as a
power (or exponentially) of the text's length in Oniguruma, the backtracking engine `tokenizers` runs it with.

A shape check over the parsed pattern, not a proof. With "repeat" meaning a quantifier whose upper bound is
more than 1 (`*`, `+`, `{2,}`, `{0,1000}`), it refuses:

- a repeat of a group that itself holds a quantifier or a choice (`(a+)+`, `(aa?)*`, `(a|ab)*`): exponential;
- two quantifiers in a row (`a{1,8}{1,8}`, `a{2,}+`, `a+*`), which Oniguruma reads as a repeat of a repeat
  (only a lazy `?` after a quantifier, or a possessive `+` after `*`, `+` or `?`, is a modifier);
- more than two repeats in one alternative, nested groups counted (`a*[a]*(?:a)*`): each one that can share
  characters with the others multiplies the work by the length of the text;
- anything that can fail after a second repeat of an alternative (`a*[a]*(?=x)`, `\s+\s*x`), other than an
  optional (`?`) part; two repeats that end the alternative (Llama 3's `\s*[\r\n]+`) stop at the first match;
- two repeats of the very same atom in a row (`a*a*`, `a{2,}a+`), which no real pattern writes;
- more than one group with a choice (`|`) in one alternative (`(a|a)(a|a)...`: 2**k ways to try);
- backreferences (`\1`, `\k<name>`), and groups nested more than MAX_DEPTH deep (too deep to check).

What real split patterns use passes: GPT-2's, GPT-4's and Llama 3's, GPT-4o's, Qwen's, DeepSeek's, Bloom's
(tests/attacks/test_sec3_tokenizer.py). What stays: one repeat followed by something that fails (`a*(?=b)`)
costs time quadratic in the length of a run of matching text (40,000 characters: about 7 s)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_REPEATS = 2                  # repeats in one alternative (Llama 3 / GPT-4o: 2)
MAX_DEPTH = 32                   # groups in groups (real patterns: 1)


class _Refused(Exception):
    pass


@dataclass
class _Part:
    weight: int = 0              # repeats in the heaviest alternative, nested groups included
    quantified: bool = False     # holds a quantifier anywhere
    choice: bool = False         # holds a `|` anywhere


def _class_end(pattern: str, i: int) -> int:
    """The index after the character class that opens at `i` (nested classes and escapes included)."""
    n = len(pattern)
    depth, i = 1, i + 1
    if i < n and pattern[i] == "^":
        i += 1
    if i < n and pattern[i] == "]":
        i += 1
    while i < n and depth:
        if pattern[i] == "\\":
            i += 1
        elif pattern[i] == "[":
            depth += 1
        elif pattern[i] == "]":
            depth -= 1
        i += 1
    return i


def _quantifier(pattern: str, i: int) -> tuple[int, int | None, int]:
    """(lower bound, upper bound or None for unbounded, index after it) of the quantifier at `i`; (1, 1, i)
    when there is none."""
    n = len(pattern)
    if i >= n:
        return 1, 1, i
    c = pattern[i]
    if c in "*+?":
        low, high, i = (0 if c != "+" else 1), (None if c != "?" else 1), i + 1
    elif c == "{" and "}" in pattern[i:]:
        body = pattern[i + 1:pattern.index("}", i)]
        lo, comma, hi = body.partition(",")
        if not (lo.isdigit() or lo == "") or not (hi.isdigit() or hi == "") or (not lo and not comma) or \
                (not lo and not hi):
            return 1, 1, i            # not a quantifier: `{` is a literal
        low, high = int(lo or 0), (int(hi) if hi else (None if comma else int(lo)))
        i += len(body) + 2
    else:
        return 1, 1, i
    # a lazy `?` follows any quantifier; a possessive `+` only `*`, `+` and `?`: in Oniguruma's own syntax,
    # the one `tokenizers` uses, `{n,m}+` is a repeat of `{n,m}` (possessive only in its Java and Perl syntaxes)
    if i < n and (pattern[i] == "?" or pattern[i] == "+" and c != "{"):
        i += 1
    return low, high, i


def _group_start(pattern: str, i: int) -> tuple[int, bool]:
    """(index of a group's content, whether the group only sets flags: `(?i)`) for the `(` at `i`."""
    j = i + 1
    if pattern[j:j + 1] != "?":
        return j, False
    j += 1
    if pattern[j:j + 1] and pattern[j] in ":=!>~":
        return j + 1, False
    if pattern[j:j + 2] in ("<=", "<!"):
        return j + 2, False
    if pattern[j:j + 1] in ("<", "P", "'"):
        close = ">" if pattern[j] != "'" else "'"
        end = pattern.find(close, j + 2)
        return (end + 1 if end > 0 else len(pattern)), False
    if pattern[j:j + 1] == "#":
        end = pattern.find(")", j)
        return (end if end > 0 else len(pattern)), True
    while j < len(pattern) and pattern[j] in "imxWDSPya-":
        j += 1
    if pattern[j:j + 1] == ")":
        return j, True
    return j + (pattern[j:j + 1] == ":"), False


def _alternation(pattern: str, i: int, depth: int = 0) -> tuple[_Part, int]:
    """Parse alternatives from `i` up to an unmatched `)` or the end; (their summary, index of that end)."""
    if depth > MAX_DEPTH:
        raise _Refused(f"nests groups more than {MAX_DEPTH} deep (too deep to check)")
    part = _Part()
    while True:
        seq, i = _sequence(pattern, i, depth)
        part.weight = max(part.weight, seq.weight)
        part.quantified |= seq.quantified
        part.choice |= seq.choice
        if i < len(pattern) and pattern[i] == "|":
            part.choice = True
            i += 1
            continue
        return part, i


def _sequence(pattern: str, i: int, depth: int) -> tuple[_Part, int]:
    """Parse one alternative from `i`; (its summary, index of the `|` or `)` or end that ends it)."""
    n = len(pattern)
    part, choices, last = _Part(), 0, ("", False)
    while i < n and pattern[i] not in "|)":
        start, inner = i, _Part()
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1:i + 2]
            if (nxt.isdigit() and nxt != "0") or nxt == "k":
                raise _Refused("uses a backreference")
            i += 2
            if nxt in ("p", "P", "x", "u") and i < n and pattern[i] == "{":
                i = pattern.find("}", i) + 1 or n
        elif c == "[":
            i = _class_end(pattern, i)
        elif c == "(":
            j, flags_only = _group_start(pattern, i)
            if flags_only:
                i = j + 1
                continue
            inner, i = _alternation(pattern, j, depth + 1)
            i += 1                      # the `)`
        else:
            i += 1
        atom = pattern[start:i]
        low, high, i = _quantifier(pattern, i)
        if _quantifier(pattern, i)[2] != i:  # Oniguruma chains them: a{1,8}{1,8} is (?:a{1,8}){1,8}
            raise _Refused(f"chains two quantifiers ({pattern[start:i + 1][:20]}...), a repeat of a repeat like "
                           "(a+)+")
        repeat = high is None or high > 1
        if repeat and (inner.quantified or inner.choice):
            raise _Refused("repeats a group that itself has a quantifier or a choice (like (a+)+ or (a|ab)*)")
        if repeat and last[1] and last[0] == atom:
            raise _Refused(f"repeats the same atom twice in a row ({atom[:20]})")
        if part.weight >= MAX_REPEATS and low != 0:
            raise _Refused(f"has something that can fail ({atom[:20]}) after {MAX_REPEATS} repeated parts")
        part.weight += inner.weight + repeat
        if part.weight > MAX_REPEATS:
            raise _Refused(f"has more than {MAX_REPEATS} repeated parts in one alternative (like a*b?a*c*)")
        choices += inner.choice
        if choices > 1:
            raise _Refused("has more than one group with a choice in one alternative (like (a|b)(a|b))")
        part.quantified |= inner.quantified or (low, high) != (1, 1)
        part.choice |= inner.choice
        last = (atom, repeat)
    return part, i


def regex_problem(pattern: str) -> str | None:
    """Why a Split pre-tokenizer's regular expression is refused (a phrase), or None."""
    try:
        part, i = _alternation(pattern, 0)
        while i < len(pattern):         # an unmatched `)`: Oniguruma refuses the pattern; check the rest
            more, i = _alternation(pattern, i + 1)
            part.weight = max(part.weight, more.weight)
    except _Refused as e:
        return str(e)
    return None
