"""Coverage-guided fuzzing of the reader and loader with atheris (libFuzzer), for long runs.

    pip install -e ".[fuzz]"      # atheris: wheels for CPython 3.8-3.11 on x86-64 Linux
    python tests/fuzz/atheris_fuzz.py CORPUS_DIR -max_total_time=3600 -rss_limit_mb=2048 -timeout=60

An empty CORPUS_DIR is filled with the seeds (tests/fuzz/seeds.py) first. Half of the mutations are
libFuzzer's own byte-level ones, half the structured ones of tests/fuzz/mutate.py applied to the seed the
input came from, so coverage feedback steers both. A finding (an exception that is not an EdgepackError,
a broken signature oracle) stops the run and libFuzzer writes the input as crash-<sha1>; a hang past
-timeout or RSS past -rss_limit_mb is a finding too. Replay one with `python tests/fuzz/atheris_fuzz.py FILE`.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

with atheris.instrument_imports(include=["edgepack"]):
    from fuzz import harness, mutate, seeds as seeds_mod

_WORK = tempfile.mkdtemp(prefix="edgepack-atheris-")
_SEEDS_DIR = os.path.join(_WORK, "seeds")
seeds_mod.build(_SEEDS_DIR)
SEEDS = seeds_mod.read(_SEEDS_DIR)
_CASE = os.path.join(_WORK, "case.edgepack")


def _closest(data: bytes) -> seeds_mod.Seed:
    """The seed a mutant most likely came from: same length first, then the longest common prefix."""
    def score(seed: seeds_mod.Seed) -> tuple[int, int]:
        prefix = os.path.commonprefix([seed.data[:4096], data[:4096]])
        return (len(seed.data) == len(data), len(prefix))
    return max(SEEDS, key=score)


def test_one_input(data: bytes) -> None:
    with open(_CASE, "wb") as f:
        f.write(data)
    harness.exercise(_CASE, _closest(data))


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    base = _closest(data)
    _, out = mutate.mutate(base, rng, SEEDS)
    return out[:max_size]


def _fill_corpus(argv: list[str]) -> None:
    folders = [a for a in argv[1:] if not a.startswith("-") and os.path.isdir(a)]
    for folder in folders:
        if not os.listdir(folder):
            for seed in SEEDS:
                with open(os.path.join(folder, seed.name + ".edgepack"), "wb") as f:
                    f.write(seed.data)


def main() -> None:
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)
    _fill_corpus(sys.argv)
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
