"""The runtime on aarch64: scripts/arm64-check, run under QEMU as part of the default suite.

It runs wherever it can get what it needs: root, apt-get (or qemu-user-static and debootstrap already
installed), and the Debian mirror and the package index (or a warm cache in ~/.cache/edgepack-arm64).
Anywhere else the script exits 3 and this test is skipped with its reason; any other failure fails.
It costs 45 to 75 s with a warm cache and about 2.5 minutes cold (README, "Proving the runtime on aarch64");
`pytest -m "not slow and not arm64"` leaves it out while developing.
"""

import os
import pathlib
import platform
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "arm64-check"
CANNOT_RUN = 3


@pytest.mark.arm64
def test_runtime_passes_on_emulated_cortex_a72():
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        pytest.skip(f"the aarch64 check emulates aarch64 on an x86-64 Linux host; this is {platform.machine()}")
    env = {**os.environ, "EDGEPACK_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT), "--cpu", "cortex-a72"], env=env, capture_output=True, text=True,
                          timeout=1800)
    lines = proc.stdout.strip().splitlines() or [proc.stderr.strip()]
    if proc.returncode == CANNOT_RUN:
        pytest.skip(lines[-1])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert lines[-1].startswith("arm64-check passed"), lines[-1]
    print(lines[-1])


# --- the check's own guards must be able to fail: checked here, on x86, in a second -------------------

EMULATION = SCRIPT.parent / "emulation"


def _host_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("arm64_host", EMULATION / "host.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _logits(seed=0, n=200):
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"logits": (rng.standard_normal((n, 10)) * 5).astype(np.float32)}, rng.integers(0, 10, n)


def test_comparison_passes_bit_exact_and_small_float_differences():
    host = _host_module()
    x86, labels = _logits()
    ok, line, worst = host.judge("m", "fp32", x86, dict(x86), labels)
    assert ok and worst == 0 and "bit-exact" in line
    nudged = {"logits": x86["logits"] * (1 + 1e-6)}
    ok, line, worst = host.judge("m", "fp32", x86, nudged, labels)
    assert ok and 0 < worst <= 2e-6, line


@pytest.mark.parametrize("kind, scale", [("fp32", 1e-4), ("int8", 5e-2)])
def test_comparison_fails_beyond_tolerance(kind, scale):
    host = _host_module()
    x86, labels = _logits()
    off = {"logits": x86["logits"].copy()}
    off["logits"][0, 0] += scale * abs(x86["logits"]).max()
    ok, line, _ = host.judge("m", kind, x86, off, labels)
    assert not ok and "FAILED" in line


def test_comparison_fails_when_int8_predictions_change():
    host = _host_module()
    x86, labels = _logits()
    logits = x86["logits"]
    logits[:4, :2] = logits[:4].max(1, keepdims=True) + 1  # 2% of the samples: a near tie at the top
    flipped = {"logits": logits.copy()}
    flipped["logits"][:4, 1] += 1e-3  # far inside the value tolerance, but another top-1
    ok, line, worst = host.judge("m", "int8", x86, flipped, labels)
    assert worst < host.TOLERANCE["int8"]
    assert not ok and "top-1 agree 98.00%" in line


def test_comparison_fails_on_dtype_or_missing_outputs():
    import numpy as np

    host = _host_module()
    x86, labels = _logits()
    assert not host.judge("m", "fp32", x86, {"logits": x86["logits"].astype(np.float64)}, labels)[0]
    assert not host.judge("m", "fp32", x86, {"other": x86["logits"]}, labels)[0]


def test_guest_refuses_a_machine_with_the_packager_or_another_architecture():
    """guest.py run here, on x86 with the packager installed: both guards must trip."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import guest\n"
            "check = getattr(guest, sys.argv[2])\n"
            "check()")
    for check, expected in (("check_device", "not 'aarch64'"), ("check_isolation", "'onnx'")):
        proc = subprocess.run([sys.executable, "-c", code, str(EMULATION), check], capture_output=True, text=True)
        assert proc.returncode == 1 and expected in proc.stdout, (check, proc.stdout, proc.stderr)


def _llm_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("arm64_llm", EMULATION / "llm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_language_model_comparison_needs_every_token_equal(tmp_path, capsys):
    import json

    import numpy as np

    llm = _llm_module()
    p = llm._paths(str(tmp_path))
    (tmp_path / "llm").mkdir()
    json.dump({"token_ids": [0, 5], "bundle_bytes": 10, "method": "gptq", "bits_per_weight": 5.125},
              open(p["prompt"], "w"))
    logits = np.linspace(-3, 3, 50, dtype=np.float32)
    np.save(p["x86_logits"], logits)
    np.save(p["arm_logits"], logits * (1 + 1e-3))
    tokens = [7, 8, 9, 10]
    json.dump({"token_ids": tokens}, open(p["x86"], "w"))
    for arm, expected in ((tokens, 0), (tokens[:3] + [11], 1), (tokens[:3], 1), ([], 1)):
        json.dump({"token_ids": arm}, open(p["arm"], "w"))
        assert llm.compare(str(tmp_path)) == expected, arm
        assert ("ok" if expected == 0 else "FAILED") in capsys.readouterr().out
    json.dump({"token_ids": []}, open(p["x86"], "w"))  # nothing generated anywhere proves nothing
    assert llm.compare(str(tmp_path)) == 1
