"""One mutated bundle through everything that reads a bundle; only edgepack's own errors may come out.

`exercise` opens the bundle with the lazy reader, verifies every hash and decodes a few tensors, then loads
it and runs it once, and, for a signed seed, loads it again with the public key. Any exception that is not
an EdgepackError propagates to the caller (a finding); so does an oracle failure (BrokenOracle).

The load oracle (issue 19): under the untrusted defaults, load() of a bundle under LOAD_ORACLE_BYTES may
take at most LOAD_ORACLE_S seconds and grow the process's peak RSS by at most LOAD_ORACLE_MB, whether it
succeeds or raises. The peak is measured by resetting VmHWM (/proc/self/clear_refs) before the load.
"""

from __future__ import annotations

import os
import time

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


LOAD_ORACLE_BYTES = 64 * 1024
LOAD_ORACLE_S = 10.0
LOAD_ORACLE_MB = 1024.0
peak_seen_mb = 0.0  # the highest VmHWM seen before a reset (run.py reports the worker's peak from it)


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux); remember the old peak first."""
    global peak_seen_mb
    peak_seen_mb = max(peak_seen_mb, _status_mb("VmHWM:") or 0.0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _run(path: str, seed: Seed) -> str:
    small = os.path.getsize(path) < LOAD_ORACLE_BYTES
    before = _status_mb("VmRSS:") or 0.0
    measured = small and _reset_peak()
    t0 = time.perf_counter()
    try:
        session = load(path)
    finally:
        seconds = time.perf_counter() - t0
        grown = (_status_mb("VmHWM:") or 0.0) - before if measured else 0.0
        if small and (seconds > LOAD_ORACLE_S or grown > LOAD_ORACLE_MB):
            raise BrokenOracle(f"load() of a {os.path.getsize(path)}-byte bundle took {seconds:.1f} s and grew "
                               f"the peak RSS by {grown:.0f} MB (at most {LOAD_ORACLE_S:.0f} s and "
                               f"{LOAD_ORACLE_MB:.0f} MB under the untrusted defaults)")
    session.run(seed.feeds, timeout=RUN_TIMEOUT_S)
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
