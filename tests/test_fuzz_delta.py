"""The CI delta fuzz run: 400 fixed-seed mutants of valid deltas, only EdgepackErrors, no output on a
refusal, the base untouched, and any delta that applies writes exactly the new bundle.

A long run is `python tests/fuzz/delta_run.py --seconds 3600 --seed N` (tests/fuzz/README.md)."""

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent / "fuzz" / "delta_run.py"


def test_fixed_seed_delta_fuzz_run(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--count", "400", "--seed", "20261207", "--out", str(tmp_path),
                           "--json"], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["findings"] == [], report["findings"]
    assert report["cases"] == 400 and proc.returncode == 0
    assert report["peak_rss_mb"] < 400
    # Not vacuous: every family ran, and mutants got past the header to each kind of check.
    assert len(report["mutations"]) == 7
    assert {"InvalidDelta", "CorruptDelta", "TruncatedDelta", "UnsupportedDeltaVersion",
            "ResultMismatch"} <= set(report["outcomes"]), report["outcomes"]
