"""Fidelity figures that cannot hide damage: small outputs get one cosine over all samples, top-1 agreement
only for class outputs, --output-kind names kinds, --min-cosine holds for the worst sample, and eval data too
small for a budget is said to be."""

import numpy as np
import pytest

from edgepack.packager.fidelity.metrics import metrics
from edgepack.packager.fidelity.kinds import guess, parse
from edgepack.packager.search.budget import Budget, resolution
from edgepack.packager.search.describe import search_lines
from edgepack.packager.search.evaluate import summarize
from edgepack.runtime.errors import OptionError


def _samples(values, shape):
    return [np.asarray(v, np.float32).reshape(shape) for v in values]


def test_a_probability_off_by_096_is_not_cosine_1():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.0, 1.0, 64)
    out = ref.copy()
    out[3] = abs(ref[3] - 0.96) if ref[3] > 0.5 else ref[3] + 0.96
    m = metrics(_samples(ref, (1, 1)), _samples(out, (1, 1)), None, "speech")
    # per sample, each cosine of one positive number with another is exactly 1: that hid the damage
    assert m["cosine_over"] == "all samples together" and m["cosine_min"] < 0.99
    assert abs(m["max_abs_error"] - 0.96) < 1e-6 and m["max_rel_error"] > 0.5
    assert "top1_agreement" not in m


def test_top1_only_for_class_outputs():
    rng = np.random.default_rng(1)
    logits = _samples(rng.standard_normal((8, 10)), (1, 10))
    boxes = _samples(rng.standard_normal((8, 84 * 50)), (1, 84, 50))
    state = _samples(rng.standard_normal((8, 64)), (1, 64))
    assert "top1_agreement" in metrics(logits, logits, None, "logits")
    assert "top1_agreement" not in metrics(boxes, boxes, None, "output0")      # a detector's anchors
    assert "top1_agreement" not in metrics(state, state, None, "state_out")   # a recurrent state
    assert guess("logits", logits[0]).kind == "class" and guess("embedding", state[0]).kind == "regression"
    # named by the user: the detector's class axis, and an output left out
    kinds = parse(["output0=class:1", "state_out=ignore"])
    m = metrics(boxes, boxes, None, "output0", kinds)
    assert m["top1_agreement"] == 1.0 and m["predictions"] == 8 * 50 and m["kind"] == {"kind": "class",
                                                                                       "by": "user", "axis": 1}
    assert metrics(state, state, None, "state_out", kinds) == {"kind": {"kind": "ignore", "by": "user"}}


@pytest.mark.parametrize("spec, message", [
    (["x"], "NAME=class"), (["x=logits"], "must be one of"), (["x=regression:1"], "only class outputs"),
    (["x=class:a"], "must be an integer")])
def test_output_kind_errors(spec, message):
    with pytest.raises(OptionError, match=message):
        parse(spec)


def test_min_cosine_holds_for_the_worst_sample_and_the_mean_is_named_so():
    rng = np.random.default_rng(2)
    ref = _samples(rng.standard_normal((20, 32)), (1, 32))
    out = [r.copy() for r in ref]
    out[0] = -out[0]   # one sample wrecked, 19 exact: the mean is 0.9, the worst -1
    figures = summarize({"y": metrics(ref, out, None, "y")})
    assert abs(figures["cosine"] + 1) < 1e-6 and abs(figures["cosine_mean"] - 0.9) < 1e-6
    assert Budget(min_cosine=0.5).misses(figures) and not Budget(min_mean_cosine=0.85).misses(figures)


def test_eval_data_too_small_for_the_budget_is_said_so():
    notes = resolution(Budget(max_accuracy_drop=1.0), 64, 64)
    assert len(notes) == 1 and "1.56 pt" in notes[0] and "at least 101 samples" in notes[0]
    assert resolution(Budget(max_accuracy_drop=1.0), 200, 200) == []
    assert "too small for --min-agreement" in resolution(Budget(min_agreement=0.999), 100, 100)[0]


def test_a_search_that_quantized_nothing_says_so_on_its_first_line():
    trials = [{"index": 0, "stage": "start", "prune_ratio": 0.0, "mode": "int8-static", "float_nodes": [],
               "meets": False},
              {"index": 1, "stage": "float", "prune_ratio": 0.0, "mode": "none", "float_nodes": ["*"], "meets": True,
               "cosine": 1.0}]
    search = {"trials": trials, "chosen": 1, "budget": {"min_cosine": 0.99, "max_trials": 24}, "mode": "int8-static",
              "stopped": "done", "slower_than_fp32": [0], "speed_rule": "quantized recipes must run at most as slow"}
    lines = search_lines(search)
    assert lines[0].startswith("search: QUANTIZED NOTHING") and "slower than fp32" in lines[0]
