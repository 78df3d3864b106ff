"""A review finding on today's load budget: a sparse tensor is made dense by onnxruntime while it builds the
session (constant folding off or not), and its dense shape is in the graph, not the manifest. A 2.6 KB bundle
whose sparse initializer declared 2**29 elements and held none loaded at +4105 MiB in 21 s under the
untrusted defaults; a Constant's sparse_value did the same. The graph walk now sums the sparse tensors'
dense sizes and load() holds them, beside the decoded bytes, to LoadLimits.expansion."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import bundles
from conftest import write
from edgepack.runtime import TRUSTED, load
from edgepack.runtime.errors import InvalidGraph, LoadBudgetExceeded


def _sparse(dims: list[int], values=(), indices=()):
    return helper.make_sparse_tensor(helper.make_tensor("big", TensorProto.FLOAT, [len(values)], list(values)),
                                     helper.make_tensor("big_idx", TensorProto.INT64, [len(indices)], list(indices)),
                                     dims)


def _bundle(tmp, mlp_bundle, n: int | list[int], as_constant: bool, values=(), indices=()):
    dims = n if isinstance(n, list) else [n]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    add = helper.make_node("Add", ["big", "x"], ["y"])
    sparse = _sparse(dims, values, indices)
    if as_constant:
        nodes = [helper.make_node("Constant", [], ["big"], sparse_value=sparse), add]
        graph = helper.make_graph(nodes, "g", [x], [y])
    else:
        graph = helper.make_graph([add], "g", [x], [y], sparse_initializer=[sparse])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = bundles.graph_only(mlp_bundle[0], model, codec="raw")
    return write(tmp, data, f"sparse-{len(dims)}-{dims[0]}-{as_constant}.edgepack"), len(data)


@pytest.mark.parametrize("as_constant", [False, True], ids=["sparse initializer", "Constant sparse_value"])
def test_a_sparse_tensor_dense_beyond_the_budget_is_refused_before_onnxruntime(tmp, mlp_bundle, as_constant):
    path, size = _bundle(tmp, mlp_bundle, 1 << 29, as_constant)
    assert size < 4096
    with pytest.raises(LoadBudgetExceeded, match=r"sparse tensors become 4294967296 bytes dense.*expansion"):
        load(path)


def test_the_dense_element_count_saturates_at_2_to_the_64(tmp, mlp_bundle):
    """Dims of 2**40 x 2**40 (and 2**40 x 2**40 x 2**40) count as 2**64 elements, not more: the count stays a
    small integer whatever the dims, and is still over every limit."""
    for dims in ([1 << 40, 1 << 40], [1 << 40] * 3):
        path, _ = _bundle(tmp, mlp_bundle, dims, False)
        with pytest.raises(LoadBudgetExceeded, match=f"sparse tensors become {8 << 64} bytes dense"):
            load(path)


@pytest.mark.parametrize("as_constant", [False, True], ids=["sparse initializer", "Constant sparse_value"])
def test_a_small_sparse_tensor_loads_and_runs_dense(tmp, mlp_bundle, as_constant):
    path, _ = _bundle(tmp, mlp_bundle, 1000, as_constant, values=[2.0, 3.0], indices=[5, 999])
    out = load(path).run({"x": np.array([1.0], np.float32)})["y"]
    want = np.ones(1000, np.float32)
    want[5], want[999] = 3.0, 4.0
    np.testing.assert_array_equal(out, want)


def test_the_budget_holds_at_its_edge_beside_the_decoded_bytes(tmp, mlp_bundle):
    """64 MiB (the floor, for a small file) for the sparse tensors made dense and the bundle's 101 decoded
    bytes (its graph) together: 8,388,595 elements load; 8,388,608 (64 MiB alone) do not."""
    from edgepack.runtime.limits import DENSE_ELEMENT_BYTES, EXPANSION_FLOOR

    at = EXPANSION_FLOOR // DENSE_ELEMENT_BYTES
    path, _ = _bundle(tmp, mlp_bundle, at - 13, False)
    assert load(path).run({"x": np.zeros(1, np.float32)})["y"].shape == (at - 13,)
    path, _ = _bundle(tmp, mlp_bundle, at, False)
    with pytest.raises(LoadBudgetExceeded, match=f"become {EXPANSION_FLOOR} bytes dense .* beside the 101 "):
        load(path)


def test_a_trusted_load_lifts_the_bound(tmp, mlp_bundle):
    path, _ = _bundle(tmp, mlp_bundle, 1 << 24, False)
    with pytest.raises(LoadBudgetExceeded):
        load(path)
    assert load(path, limits=TRUSTED).run({"x": np.ones(1, np.float32)})["y"].shape == (1 << 24,)


def test_a_negative_sparse_dimension_is_invalid(tmp, mlp_bundle):
    path, _ = _bundle(tmp, mlp_bundle, -4, False)
    with pytest.raises(InvalidGraph, match="negative dimension"):
        load(path)
