"""Security review 4: the split-regex shape check read a quantifier right after another as a literal (or, for
`{n,m}+`, as a possessive modifier), but Oniguruma, the engine `tokenizers` runs, chains them: `a{1,8}{1,8}`
is `(?:a{1,8}){1,8}`, and `a{1,8}+` is `(?:a{1,8})+` (possessive `{n,m}+` exists only in its Java and Perl
syntaxes): the nested repeat the check refuses when it is written with a group. `[a]{1,8}{1,8}c` passed and
took 14.6 s to encode 2,400 characters (runs of 23 `a`s, each just under Oniguruma's retry limit). Chained
quantifiers are now refused; lazy (`*?`, `{n,m}?`) and possessive (`*+`, `++`, `?+`) modifiers still pass."""

import json

import pytest

from edgepack.runtime import tokenizer as tk
from edgepack.runtime.errors import InvalidManifest
from edgepack.runtime.tokenizer_regex import regex_problem


def _doc(pattern: str) -> str:
    return json.dumps({"version": "1.0", "pre_tokenizer": {"type": "Split", "pattern": {"Regex": pattern},
                                                           "behavior": "Isolated", "invert": False},
                       "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1}, "unk_token": "<unk>"}})


@pytest.mark.parametrize("pattern", ["[a]{1,8}{1,8}c", "a{1,50}{1,50}b", "[a]{1,8}+c", "[a]{2,}+c", "a+*b",
                                     r"\s*{2}x", "a{0,9}?{2,}b", "(?:ab){1,4}{1,4}c"])
def test_chained_quantifiers_are_refused(pattern):
    with pytest.raises(InvalidManifest, match="grows as a power of the text's length"):
        tk.check_json(_doc(pattern))


@pytest.mark.parametrize("pattern", [r"\p{N}{1,3}", "a*?b", "a+?b", "a??b", "a{1,3}?b", "a*+b", "a++b", "a?+b",
                                     "a{2}b", r"x{", r"x{,}", "a{1,3}[{]"])
def test_single_quantifiers_and_their_modifiers_pass(pattern):
    assert regex_problem(pattern) is None
