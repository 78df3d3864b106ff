"""One mutated bundle through everything that reads a bundle; only edgepack's own errors may come out.

`exercise` opens the bundle with the lazy reader, verifies every hash and decodes a few tensors, then loads
it and runs it once, and, for a signed seed, loads it again with the public key. Any exception that is not
an EdgepackError propagates to the caller (a finding); so does an oracle failure (BrokenOracle).
"""

from __future__ import annotations

import numpy as np

from edgepack.runtime import EdgepackError, load, open_bundle

from .seeds import Seed


class BrokenOracle(AssertionError):
    """A mutant that a check should have refused was accepted."""


def _read(path: str) -> str:
    with open_bundle(path) as b:
        problems = b.verify()
        if problems:
            return "verify-problems"
        for t in b.manifest.tensors[:4]:
            b.tensor(t.name)
    return "verified"


# A mutant's model may compute for ever (a Loop's trip count set to 2**63): runs get a timeout, as a device
# running untrusted models should give them.
RUN_TIMEOUT_S = 2.0


def _run(path: str, seed: Seed) -> str:
    load(path).run(seed.feeds, timeout=RUN_TIMEOUT_S)
    return "ran"


def _signed(path: str, seed: Seed) -> str:
    """A bundle that passes the signature check must compute exactly what the signed original did."""
    outputs = load(path, public_key=seed.public_key).run(seed.feeds, timeout=RUN_TIMEOUT_S)
    for name, want in seed.expected.items():
        if name not in outputs or not np.array_equal(outputs[name], want, equal_nan=True):
            raise BrokenOracle(f"a mutant of {seed.name} passed the signature check but computes another {name}")
    return "signed-ran"


def exercise(path: str, seed: Seed) -> list[str]:
    """What each stage did: 'verified', 'ran', ... or the name of the EdgepackError it raised."""
    stages = [_read, _run] + ([_signed] if seed.public_key else [])
    outcomes = []
    for stage in stages:
        try:
            outcomes.append(stage(path, seed) if stage is not _read else stage(path))
        except EdgepackError as e:
            outcomes.append(type(e).__name__)
    return outcomes
