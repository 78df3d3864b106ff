"""The budget search's speed rule: on a host that runs the target's kernels, a quantized recipe slower than
fp32 is not chosen silently. Dynamic int8 convolutions (ConvInteger) run 3-6x slower than fp32 on x86
(docs/QUANTIZATION.md): the search sets them aside, packages the model in float, and says so on its first
line; --allow-slower lets them through."""

import subprocess
import sys

import pytest

import quant_models

pytestmark = pytest.mark.packager


@pytest.fixture(scope="module")
def digits():
    return quant_models.digits_cnn()


def _package(digits, out, *extra):
    return subprocess.run([sys.executable, "-m", "edgepack.cli", "package", digits["model"], "-o", str(out),
                           "--quantize", "int8-dynamic", "--op-types", "Conv", "--eval", digits["eval"],
                           "--min-cosine", "0.9", *extra], capture_output=True, text=True, timeout=600)


def test_a_recipe_slower_than_fp32_is_not_chosen_and_the_first_line_says_so(digits, tmp):
    r = _package(digits, tmp / "d.edgepack")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("search: QUANTIZED NOTHING") and "slower than fp32" in first, r.stdout
    assert "were slower, so not chosen" in r.stdout


def test_allow_slower_lifts_the_rule(digits, tmp):
    r = _package(digits, tmp / "s.edgepack", "--allow-slower")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("search: ") and "QUANTIZED NOTHING" not in r.stdout.splitlines()[0]
    assert "p50 against fp32 not checked: --allow-slower given" in r.stdout


def test_when_only_the_speed_rule_turns_recipes_down_the_error_says_so(digits, tmp):
    """A size budget that the slower quantized recipe meets and float does not: no recipe is left, and the
    error names the speed rule as the reason (not a budget it did not miss)."""
    fast = _package(digits, tmp / "q.edgepack", "--allow-slower")
    assert fast.returncode == 0, fast.stderr
    limit = int((tmp / "q.edgepack").stat().st_size * 1.02)
    r = _package(digits, tmp / "n.edgepack", "--max-bytes", str(limit))
    assert r.returncode == 1 and not (tmp / "n.edgepack").exists()
    line = r.stderr.strip().splitlines()[-1]
    assert "ran slower than fp32 on this host" in line and "--allow-slower accepts" in line, r.stderr
    assert "missed" not in line and "?" not in line
    # fp32 cannot meet --max-bytes either: no advice to package it in float (a new user's finding)
    assert "--quantize none" not in line and "the model in float" in line and "--max-bytes" in line, line
