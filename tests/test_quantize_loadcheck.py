"""The load check runs the quantized model in a child process with the target's session options: a model
onnxruntime refuses is an error, and a crash is retried at lower optimization levels."""

import dataclasses
import signal

import numpy as np
import pytest

from edgepack.packager.quantize import loadcheck
from edgepack.packager.errors import QuantizationError
from edgepack.runtime.profile import load_profile

import quant_models

PROFILE = load_profile("generic-x86-64")


def test_a_good_model_passes_with_its_profile(tmp):
    feeds = {"x": np.ones((1, 8), np.float32)}
    profile, warning = loadcheck.check_loads(quant_models.no_weights(), PROFILE, feeds, str(tmp))
    assert profile is PROFILE and warning is None
    with pytest.raises(QuantizationError, match="fails in onnxruntime.*running"):   # feeds of the wrong width
        loadcheck.check_loads(quant_models.batched_weight(), PROFILE, {"x": np.ones((2, 1, 5), np.float32)},
                              str(tmp))


def test_made_up_feeds_the_original_fails_on_prove_nothing(tmp):
    model = quant_models.batched_weight()
    feeds = {"x": np.ones((2, 1, 5), np.float32)}                   # wrong width for both models
    assert loadcheck.check_loads(model, PROFILE, feeds, str(tmp), reference=model) == (PROFILE, None)


def test_a_crash_is_retried_at_lower_optimization_levels(tmp, monkeypatch):
    tried = []

    def crash_above_extended(path, feeds, profile, timeout):
        level = profile.session.graph_optimization_level
        tried.append(level)
        return (-signal.SIGSEGV, "") if level == "all" else (0, "")

    monkeypatch.setattr(loadcheck, "_try", crash_above_extended)
    profile, warning = loadcheck.check_loads(quant_models.no_weights(), PROFILE, None, str(tmp))
    assert tried == ["all", "extended"] and profile.session.graph_optimization_level == "extended"
    assert dataclasses.replace(profile, session=PROFILE.session) == PROFILE
    assert "crashed (SIGSEGV)" in warning and "it works at 'extended'" in warning

    monkeypatch.setattr(loadcheck, "_try", lambda *a: (-signal.SIGSEGV, ""))
    with pytest.raises(QuantizationError, match=r"onnxruntime crashed \(SIGSEGV\)"):
        loadcheck.check_loads(quant_models.no_weights(), PROFILE, None, str(tmp))
