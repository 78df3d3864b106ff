"""The CI fuzz run: 2,000 fixed-seed mutants of valid bundles, only EdgepackErrors, within bounds.

A long run is `python tests/fuzz/run.py --seconds 3600 --seed N` (tests/fuzz/README.md).
"""

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent / "fuzz" / "run.py"
CASES = 2000
# Bounds: the heaviest mutant (a 1 GiB graph declared by frames that fail) costs a frame or two, and a
# worker otherwise holds the seeds and onnxruntime; runs that compute for ever are stopped after 2 s.
MAX_RSS_MB = 600
MAX_CASE_S = 20


def test_fixed_seed_fuzz_run(tmp_path):
    proc = subprocess.run([sys.executable, str(RUN), "--count", str(CASES), "--seed", "20261128", "--jobs", "2",
                           "--out", str(tmp_path), "--case-timeout", "60", "--json"],
                          capture_output=True, text=True, timeout=900)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["findings"] == [], report["findings"]
    assert report["crashes"] == [], report["crashes"]
    assert report["cases"] == CASES
    assert report["peak_rss_mb"] < MAX_RSS_MB
    assert report["slowest_s"] < MAX_CASE_S
    assert proc.returncode == 0
    # Not vacuous: every mutation ran, mutants got past each check to onnxruntime, and many kinds of
    # refusal came out.
    assert len(report["mutations"]) == 19
    stages = [outcome.split() for outcome in report["outcomes"]]
    errors = {name for stage in stages for name in stage if name not in ("verified", "ran", "verify-problems")}
    assert {"InvalidManifest", "InvalidOffset", "InvalidGraph", "SessionError", "CorruptTensor", "TruncatedBundle",
            "TrailingBytes", "LimitExceeded", "BadSignature", "UnsignedBundle", "TargetError"} <= errors, errors
    assert sum(n for outcome, n in report["outcomes"].items() if outcome.split()[1] == "ran") > 100
