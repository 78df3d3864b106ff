"""Finding F3 of the third security review: in a compressed bundle, load() splices the manifest's tensors into
the graph, but onnxruntime knows each by the name in the graph. A second initializer (values in float_data,
so neither spliced nor listed), a node output or a sparse initializer named like a manifest tensor and placed
before it made onnxruntime compute with the attacker's weights; and the manifest's name of a spliced tensor
was never compared with the graph's (swapping two names verify()d clean). Signing does not help: the
publisher's key vouches for a manifest whose names the graph did not honour. runtime/binding.py now binds
the graph's names to the manifest's, for both layouts."""

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager import package
from edgepack.packager.sign import sign_bundle
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle

import bundles
import graphs
from conftest import write


@pytest.fixture(scope="module")
def mlp_src(tmp_path_factory):
    """(path, model, feeds) of a packaged MLP with w0, b0, w1, b1."""
    model, feeds = graphs.mlp(hidden=(64,))
    path = tmp_path_factory.mktemp("sec3") / "src.edgepack"
    package(model, output=path)
    return path, model, feeds


def _zeros_like(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    """A tensor named `name` with `name`'s shape, all zeros, in float_data (typed: nothing to splice)."""
    arr = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))
    return helper.make_tensor(name, TensorProto.FLOAT, arr.shape, np.zeros(arr.size, np.float32).tolist())


def _hostile(tmp, src, edit, name="attack.edgepack"):
    return write(tmp, bundles.rewritten(src, edit), name)


def _refused(path, match, public_key=None):
    with open_bundle(path, public_key=public_key) as b:  # what an inspector or a signer sees: nothing amiss
        assert b.verify() == []
    with pytest.raises(E.InvalidGraph, match=match):
        load(path, public_key=public_key)


@pytest.mark.parametrize("first", [True, False], ids=["before the real one", "after the real one"])
def test_a_typed_initializer_named_like_a_manifest_tensor_is_refused(tmp, mlp_src, first):
    src, model, _ = mlp_src

    def edit(m):
        evil = _zeros_like(model, "w0")
        if first:
            m.graph.initializer.insert(0, evil)
        else:
            m.graph.initializer.append(evil)

    _refused(_hostile(tmp, src, edit), "defines 'w0', a manifest tensor's name, as an initializer")


def test_a_signed_bundle_with_a_shadowing_initializer_is_refused(tmp, mlp_src, keypair):
    """The signature covers the manifest and the graph alike: the check still runs (and still refuses)."""
    src, model, _ = mlp_src
    path = _hostile(tmp, src, lambda m: m.graph.initializer.insert(0, _zeros_like(model, "w0")))
    sign_bundle(path, keypair.private_path)
    _refused(path, "'w0', a manifest tensor's name", public_key=keypair.public_path)


def test_swapped_manifest_names_are_refused(tmp, mlp_src):
    src, _, _ = mlp_src

    def edit(m):
        a, b = (next(t for t in m["tensors"] if t["name"] == n) for n in ("b0", "b1"))
        a["name"], b["name"] = "b1", "b0"

    path = write(tmp, bundles.edit_manifest(src.read_bytes(), edit))
    _refused(path, "names the tensor spliced in at byte .* 'b1', but the graph's tensor there is 'b0'")


def test_a_manifest_name_the_graph_does_not_use_is_refused(tmp, mlp_src):
    src, _, _ = mlp_src

    def edit(m):
        next(t for t in m["tensors"] if t["name"] == "w1")["name"] = "w1#2"  # the writer's suffix, unearned

    _refused(write(tmp, bundles.edit_manifest(src.read_bytes(), edit)), "'w1#2', but the graph's tensor there is 'w1'")


def test_a_node_output_named_like_a_manifest_tensor_is_refused(tmp, mlp_src):
    """A Constant's value_floats (no TensorProto at all), reshaped into a node output named w0."""
    src, model, _ = mlp_src
    shape = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w0")).shape

    def edit(m):
        const = helper.make_node("Constant", [], ["w0_flat"], value_floats=[0.0] * int(np.prod(shape)))
        m.graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), "w0_shape"))
        m.graph.node.insert(0, helper.make_node("Reshape", ["w0_flat", "w0_shape"], ["w0"]))
        m.graph.node.insert(0, const)

    _refused(_hostile(tmp, src, edit), "defines 'w0', a manifest tensor's name, as a node output")


def test_a_constant_named_like_a_manifest_tensor_is_refused(tmp, mlp_src):
    src, model, _ = mlp_src

    def edit(m):
        m.graph.node.insert(0, helper.make_node("Constant", [], ["b0"], value_floats=[0.0] * 64))

    _refused(_hostile(tmp, src, edit), "defines 'b0', a manifest tensor's name, as a node output")


def test_a_sparse_initializer_named_like_a_manifest_tensor_is_refused(tmp, mlp_src):
    src, model, _ = mlp_src
    shape = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w0")).shape

    def edit(m):
        values = helper.make_tensor("w0", TensorProto.FLOAT, [1], [5.0])
        indices = helper.make_tensor("w0_i", TensorProto.INT64, [1], [0])
        m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(shape)))

    _refused(_hostile(tmp, src, edit), "defines 'w0', a manifest tensor's name, as a sparse initializer")


def test_two_spliced_initializers_of_one_name_are_refused(tmp, mlp_src):
    """Both listed (as w0 and w0#2, the writer's names): onnxruntime would still use only one of them."""
    src, model, _ = mlp_src

    def edit(m):
        evil = numpy_helper.from_array(np.zeros(numpy_helper.to_array(_zeros_like(model, "w0")).shape, np.float32),
                                       "w0")
        m.graph.initializer.insert(0, evil)

    path = _hostile(tmp, src, edit)
    with open_bundle(path) as b:
        assert {"w0", "w0#2"} <= {t.name for t in b.manifest.tensors}
    _refused(path, "'w0' is defined twice in one graph")


def test_two_small_typed_initializers_of_one_name_are_refused(tmp, mlp_src):
    """Neither is a manifest tensor, but which one onnxruntime uses is still up to the attacker."""
    src, _, _ = mlp_src

    def edit(m):
        m.graph.initializer.extend([helper.make_tensor("k", TensorProto.INT64, [1], [v]) for v in (1, 2)])

    _refused(_hostile(tmp, src, edit), "'k' is defined twice in one graph")


def _if_model(then_inits, else_inits, outer_inits=(), then_nodes=()):
    """y = If(c, x @ w_then, x @ w_else): weights inside the branches."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])

    def branch(name, w, inits, nodes=()):
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2, 4])
        return helper.make_graph([*nodes, helper.make_node("MatMul", ["x", w], [f"{name}_out"])], name, [], [out],
                                 list(inits))

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then", then_inits[0].name, then_inits, then_nodes),
                            else_branch=branch("else", else_inits[0].name, else_inits))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []), x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], list(outer_inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(name, value):
    return numpy_helper.from_array(np.full((4, 4), value, np.float32), name)


def test_sibling_branches_may_reuse_a_name(tmp):
    """Legitimate: each branch is its own scope; the writer lists them as c and c#2, and both load."""
    path = tmp / "siblings.edgepack"
    package(_if_model([_weight("c", 1.0)], [_weight("c", 2.0)]), output=path)
    with open_bundle(path) as b:
        assert sorted(t.name for t in b.manifest.tensors) == ["c", "c#2"]
    x = np.ones((2, 4), np.float32)
    session = load(path)
    for cond, value in ((True, 4.0), (False, 8.0)):
        np.testing.assert_array_equal(session.run({"c": np.array(cond), "x": x})["y"], np.full((2, 4), value))


def test_a_branch_initializer_shadowing_an_outer_one_is_refused(tmp):
    """A typed initializer in the then-branch named like the main graph's `w`: onnxruntime uses one of them
    inside the branch. (Packaged as is: the packager leaves a tensor that small in typed fields.)"""
    outer = _weight("w", 1.0)
    shadow = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.0] * 16)
    src = tmp / "src.edgepack"
    package(_if_model([_weight("a", 1.0)], [_weight("b", 2.0)], [outer], ()), output=src)

    def edit(m):
        then = next(a.g for a in m.graph.node[0].attribute if a.name == "then_branch")
        then.initializer.append(shadow)
        then.node[0].input[1] = "w"

    _refused(_hostile(tmp, src, edit), "defines 'w', a manifest tensor's name, as an initializer")


def test_a_branch_weight_shadowing_an_outer_one_loads_and_computes_as_onnxruntime_does(tmp):
    """Legitimate ONNX (onnx's checker accepts it): the then-branch has its own initializer `w`, as the main
    graph does; the body uses its own. Both are manifest tensors (w, w#2), and the bundle computes what
    onnxruntime computes on the original model."""
    import onnx
    import onnxruntime as ort

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    inner = numpy_helper.from_array(np.full((4, 4), 2.0, np.float32), "w")
    out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])
    then = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "then", [], [out], [inner])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("If", ["c"], ["b"], then_branch=then, else_branch=other),
             helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    path = tmp / "shadow.edgepack"
    package(model, output=path)
    with open_bundle(path) as b:
        assert sorted(t.name for t in b.manifest.tensors) == ["w", "w#2"]
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session = load(path)
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    for cond in (True, False):
        feeds = {"x": x, "c": np.array(cond)}
        np.testing.assert_array_equal(session.run(feeds)["y"], reference.run(None, feeds)[0])


def test_a_typed_initializer_defined_twice_in_a_branch_is_refused(tmp):
    """Small typed initializers (in no manifest) named alike in one graph: onnxruntime keeps one."""
    src = tmp / "src.edgepack"
    package(_if_model([_weight("a", 1.0)], [_weight("b", 2.0)]), output=src)

    def edit(m):
        then = next(a.g for a in m.graph.node[0].attribute if a.name == "then_branch")
        then.initializer.append(helper.make_tensor("k", TensorProto.INT64, [1], [1]))
        then.initializer.append(helper.make_tensor("k", TensorProto.INT64, [1], [2]))

    _refused(_hostile(tmp, src, edit), "'k' is defined twice in one graph")


def test_a_branch_constant_named_like_a_sibling_weight_is_refused(tmp):
    """A Constant in the then-branch whose output is named like the else-branch's (listed) weight."""
    src = tmp / "src.edgepack"
    package(_if_model([_weight("a", 1.0)], [_weight("b", 2.0)]), output=src)

    def edit(m):
        then = next(a.g for a in m.graph.node[0].attribute if a.name == "then_branch")
        then.node.insert(0, helper.make_node("Constant", [], ["b"], value_floats=[0.0] * 16))

    _refused(_hostile(tmp, src, edit), "defines 'b', a manifest tensor's name, as a node output")


# --- issue 19: a spliced Constant, and long names in the messages ----------------------------------------

def _small_model(inits, nodes):
    """x, y: float[4]; `nodes` compute y from x and the initializers `inits`."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _cut_and_build(tmp, mlp_src, serialized, edit=None):
    """The model's raw_data payloads cut out as the writer does, each listed by the writer's name; `edit`
    may then change the manifest."""
    manifest, graph, raws = bundles.cut(serialized, bundles.parts(mlp_src[0].read_bytes())[2])
    if edit:
        edit(manifest)
    return write(tmp, bundles.build(manifest, graph, raws))


def test_a_spliced_constant_in_the_first_node_loads(tmp, mlp_src):
    """The first node (node 0) is a Constant whose value, in raw_data, is spliced in and listed under the
    node's output `c`: that output is the manifest's tensor, not a second definition of its name."""
    value = numpy_helper.from_array(np.array([1, 2, 3, 4], np.float32), "v")
    nodes = [helper.make_node("Constant", [], ["c"], value=value), helper.make_node("Add", ["x", "c"], ["y"])]
    path = _cut_and_build(tmp, mlp_src, _small_model([], nodes))
    with open_bundle(path) as b:
        assert [(t.name, t.binding) for t in b.manifest.tensors] == [("c", "inline")]
    np.testing.assert_array_equal(load(path).run({"x": np.ones(4, np.float32)})["y"], [2, 3, 4, 5])


LONG_A, LONG_B = "a" * 150 + "A" * 150, "b" * 150 + "B" * 150  # over 200 characters: quoted to 200


def test_swapped_long_names_are_quoted_to_200_characters(tmp, mlp_src):
    inits = [numpy_helper.from_array(np.full(4, v, np.float32), n) for n, v in ((LONG_A, 2.0), (LONG_B, 3.0))]
    nodes = [helper.make_node("Mul", ["x", LONG_A], ["m"]), helper.make_node("Add", ["m", LONG_B], ["y"])]
    splice = []

    def edit(m):
        a, b = m["tensors"]
        a["name"], b["name"] = b["name"], a["name"]
        splice.append(a["splice"])

    path = _cut_and_build(tmp, mlp_src, _small_model(inits, nodes), edit)
    _refused(path, re.escape(f"the manifest names the tensor spliced in at byte {splice[0]} {LONG_B[:200]!r}, "
                             f"but the graph's tensor there is {LONG_A[:200]!r} (its manifest name would be "
                             f"{LONG_A[:200]!r})"))


def test_a_typed_initializer_with_a_long_manifest_name_is_quoted_to_200_characters(tmp, mlp_src):
    inits = [helper.make_tensor(LONG_A, TensorProto.FLOAT, [4], [0.0] * 4),
             numpy_helper.from_array(np.full(4, 2.0, np.float32), LONG_A)]
    nodes = [helper.make_node("Mul", ["x", LONG_A], ["y"])]
    path = _cut_and_build(tmp, mlp_src, _small_model(inits, nodes))
    _refused(path, re.escape(f"the graph defines {LONG_A[:200]!r}, a manifest tensor's name, as an initializer "
                             "whose value"))


# --- the mapped layout ---------------------------------------------------------------------------------

def _mapped_model():
    """A large weight (mapped) and two small biases (inline), plus a small typed int64 tensor `zz`."""
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "wq")
    b0, b1 = (numpy_helper.from_array(np.full(64, v, np.float32), n) for n, v in (("b0", 1.0), ("b1", 2.0)))
    zz = helper.make_tensor("zz", TensorProto.FLOAT, [2], [0.0, 0.0])
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["h"]), helper.make_node("Add", ["h", "b0"], ["h2"]),
             helper.make_node("Add", ["h2", "b1"], ["h3"]), helper.make_node("ReduceSum", ["zz"], ["s"]),
             helper.make_node("Add", ["h3", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight, b0, b1, zz])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def mapped_src(tmp):
    path = tmp / "mapped.edgepack"
    package(_mapped_model(), output=path, layout="mapped")
    with open_bundle(path) as b:
        assert [t.name for t in b.manifest.mapped] == ["wq"]
        assert {"b0", "b1"} <= {t.name for t in b.manifest.tensors if t.binding == "inline"}
    load(path)  # the bundle as packaged loads
    return path


def test_mapped_swapped_inline_names_are_refused(tmp, mapped_src):
    def edit(m):
        a, b = (next(t for t in m["tensors"] if t["name"] == n) for n in ("b0", "b1"))
        a["name"], b["name"] = "b1", "b0"

    path = write(tmp, bundles.edit_manifest(mapped_src.read_bytes(), edit), "swapped.edgepack")
    with pytest.raises(E.InvalidGraph, match="'b1', but the graph's tensor there is 'b0'"):
        load(path)


def test_mapped_typed_initializer_named_like_an_inline_tensor_is_refused(tmp, mapped_src):
    """The typed `zz` renamed b0 in the stored graph (same length: the splices stay where they were)."""
    from edgepack.runtime.mapped import check_graph

    with open_bundle(mapped_src) as b:
        graph = bytes(b.read_graph())
        assert graph.count(b"zz") == 2  # the initializer's name and ReduceSum's input
        mapped = list(b.manifest.mapped)
        inline = sorted((t for t in b.manifest.tensors if t.binding == "inline"), key=lambda t: t.splice or 0)
        check_graph(b, graph, inline, mapped)  # the graph as packaged passes
        with pytest.raises(E.InvalidGraph, match="defines 'b0', a manifest tensor's name, as an initializer"):
            check_graph(b, graph.replace(b"zz", b"b0"), inline, mapped)


def test_a_name_defined_twice_is_quoted_to_200_characters(tmp, mlp_src):
    src, _, _ = mlp_src

    def edit(m):
        m.graph.initializer.extend([helper.make_tensor(LONG_B, TensorProto.INT64, [1], [v]) for v in (1, 2)])

    _refused(_hostile(tmp, src, edit), re.escape(f"{LONG_B[:200]!r} is defined twice in one graph (an initializer "
                                                 "and an initializer)"))


def test_omitted_optional_outputs_are_not_names(tmp):
    """Exporters write an optional output they leave out as "" (Dropout's mask, LSTM's states): several nodes
    doing so in one graph define nothing twice, and the bundle loads and computes as the model does."""
    w = numpy_helper.from_array(np.full((4, 4), 0.5, np.float32), "w")
    nodes = [helper.make_node("Dropout", ["x"], ["d1", ""]), helper.make_node("Dropout", ["d1"], ["d2", ""]),
             helper.make_node("MatMul", ["d2", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp / "optional.edgepack"
    package(model, output=path)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(load(path).run({"x": x})["y"], x @ np.full((4, 4), 0.5, np.float32))
