"""A graph that uses a tensor the manifest does not have: refused by name, before onnxruntime builds
anything where the bundle can tell, and wrapped as a SessionError where only onnxruntime can."""

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle

import bundles
from conftest import write


def test_an_entry_removed_from_the_manifest_is_found_in_the_graph(tmp, mlp_bundle):
    """The manifest drops w1 (entry and bytes); the graph still has w1's raw_data field, now empty of bytes."""
    data, _ = mlp_bundle
    src = write(tmp, data, "src.edgepack")
    manifest, graph, tensors = bundles.decoded(src)
    keep = [i for i, t in enumerate(manifest["tensors"]) if t["name"] != "w1"]
    shifted = dict(manifest, tensors=[manifest["tensors"][i] for i in keep])
    bad = write(tmp, bundles.build(shifted, graph, [tensors[i] for i in keep]))
    with open_bundle(bad) as b:
        assert b.verify() == []  # every hash the manifest lists is right: only the graph can tell
    with pytest.raises(E.InvalidGraph, match="'w1' holds 16384 bytes of raw data that no manifest entry lists"):
        load(bad)


def test_a_node_input_with_no_initializer_is_refused_by_onnxruntime(tmp, mlp_bundle):
    data, _ = mlp_bundle

    def edit(model):
        model.graph.node[0].input[1] = "w_missing"
    bad = write(tmp, bundles.rewritten(write(tmp, data, "src.edgepack"), edit))
    with pytest.raises(E.SessionError, match="w_missing"):
        load(bad)


def test_an_external_binding_to_a_tensor_the_manifest_lacks_is_refused(tmp, mlp_bundle):
    data, _ = mlp_bundle

    def edit(model):
        t = model.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = 1
        entry = t.external_data.add()
        entry.key, entry.value = "location", "edgepack:ghost"
    bad = write(tmp, bundles.rewritten(write(tmp, data, "src.edgepack"), edit))
    with pytest.raises(E.InvalidGraph, match="refers to external data 'edgepack:ghost'"):
        load(bad)


def test_an_external_tensor_the_graph_does_not_use_is_refused(tmp, mlp_bundle):
    data, _ = mlp_bundle
    src = write(tmp, data, "src.edgepack")
    manifest, graph, tensors = bundles.decoded(src)
    extra = {"name": "stowaway", "dtype": "float32", "shape": [4], "binding": "external"}
    manifest = dict(manifest, tensors=manifest["tensors"] + [extra])
    bad = write(tmp, bundles.build(manifest, graph, tensors + [bytes(16)]))
    with pytest.raises(E.InvalidGraph, match="stowaway"):
        load(bad)
