"""Every file or folder the documentation names exists in the repository, and no document points at a path
outside it (a user has only the repository)."""

from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted([os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))])
TOP = ("docs", "tests", "benchmarks", "runtime", "packager", "src", "targets", "examples", "scripts", "tools")
# a repository path: one of the top folders, then path characters; stops before punctuation that ends prose
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP) + r")/(?:[\w./*-]*[\w/*])?)")
PLACEHOLDERS = ("NAME", "PATH", "FILE", "MODEL", "BUNDLE", "KEY", "FOLDER", "NN")
ABSOLUTE = re.compile(r"(?<![\w.~-])(/(?:work|tmp/bars|home/\w+)/[\w./-]+)")


def _exists(path: str) -> bool:
    """The path exists, or, written with a placeholder in capitals (targets/NAME.json), some path fits it."""
    if glob.glob(os.path.join(ROOT, path)):
        return True
    pattern = re.sub(r"(?<=/)(?:" + "|".join(PLACEHOLDERS) + r")(?=[./]|$)", "*", path)
    return pattern != path and bool(glob.glob(os.path.join(ROOT, pattern)))


def _named(text: str) -> list[str]:
    return sorted(set(PATH.findall(text)))


@pytest.mark.parametrize("doc", DOCS, ids=[os.path.relpath(d, ROOT) for d in DOCS])
def test_every_named_path_exists(doc: str) -> None:
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    missing = [p for p in _named(text) if not _exists(p)]
    assert not missing, f"{os.path.relpath(doc, ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=[os.path.relpath(d, ROOT) for d in DOCS])
def test_no_path_outside_the_repository(doc: str) -> None:
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    outside = ABSOLUTE.findall(text)
    assert not outside, f"{os.path.relpath(doc, ROOT)} points at files users do not have: {outside}"


def test_the_checker_sees_paths() -> None:
    assert _named("see `tests/test_concurrency.py`, docs/TARGETS.md and targets/.") == \
        ["docs/TARGETS.md", "targets/", "tests/test_concurrency.py"]
    assert _exists("targets/NAME.json") and not _exists("targets/NAME.yaml") and not _exists("docs/NOPE.md")
    assert ABSOLUTE.findall("(/work/shared/notes/x.md)") == ["/work/shared/notes/x.md"]
