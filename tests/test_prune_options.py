"""Pruning options: each bad value or combination gets the error that says what to do."""

import pytest

from edgepack.packager.prune import PruneOptions
from edgepack.packager.prune.step import options_from
from edgepack.runtime.errors import OptionError


@pytest.mark.parametrize("spec, message", [
    ("channels", "give METHOD:RATIO, e.g. channels:0.3"),
    ("filters:0.3", "prune method must be one of channels, unstructured; got 'filters'"),
    ("channels:half", "the ratio 'half' is not a number"),
    ("channels:0", "prune ratio must be between 0 and 1 (exclusive), got 0.0"),
    ("channels:1", "prune ratio must be between 0 and 1 (exclusive), got 1.0"),
])
def test_bad_spec(spec, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PruneOptions.parse(spec)


@pytest.mark.parametrize("options, message", [
    (dict(scope="model"), "--prune-scope must be one of global, layer; got 'model'"),
    (dict(criterion="l0"), "--prune-criterion must be one of activation, l1, l2; got 'l0'"),
    (dict(method="unstructured", reconstruct=True), "use it with --prune channels:RATIO"),
    (dict(ridge=0.0), "ridge must be positive"),
    (dict(max_layer_ratio=1.0), "max_layer_ratio must be between 0 and 1"),
    (dict(round_to=0), "--prune-round-to must be a positive whole number, got 0"),
    (dict(round_to=2.5), "--prune-round-to must be a positive whole number, got 2.5"),
])
def test_bad_options(options, message):
    with pytest.raises(OptionError, match=message):
        PruneOptions(**options)


def test_unknown_keyword_is_rejected():
    with pytest.raises(OptionError, match=r"unknown pruning option\(s\) \['sparsity'\]"):
        PruneOptions.parse("channels:0.3", sparsity=0.5)


def test_parse_keeps_the_companions():
    o = PruneOptions.parse("unstructured:0.25", scope="global", criterion="activation")
    assert (o.method, o.ratio, o.scope, o.criterion, o.reconstruct) == ("unstructured", 0.25, "global", "activation",
                                                                       False)
    assert o.needs_samples and o.spec == "unstructured:0.25"


@pytest.mark.parametrize("kwargs, message", [
    (dict(scope="global"), "--prune-scope needs --prune METHOD:RATIO"),
    (dict(criterion="l2", reconstruct=True), "--prune-criterion, --reconstruct needs --prune METHOD:RATIO"),
])
def test_companions_without_prune_are_errors(kwargs, message):
    with pytest.raises(OptionError, match=message):
        options_from(None, kwargs.get("scope"), kwargs.get("criterion"), kwargs.get("reconstruct", False))


def test_options_object_with_companions_is_an_error():
    with pytest.raises(OptionError, match="inside PruneOptions"):
        options_from(PruneOptions(), "global", None, False)
