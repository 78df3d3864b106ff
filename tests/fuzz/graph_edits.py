"""Protobuf-level edits of a seed's model (with onnx), cut back into graph and tensors for resealing.

Each edit makes a model a careless or hostile exporter could write: initializers dropped (the graph then
names a tensor the bundle lacks), inputs renamed, external-data references (paths out of the folder,
absolute paths, other tensors' names, next to inline bytes), dims and data types that disagree with the
bytes, unknown operators, odd opsets, deeply nested subgraphs, duplicate names, typed-field data.
"""

from __future__ import annotations

import random

import onnx
from onnx import TensorProto, helper

import bundles

LOCATIONS = ["../../../../etc/passwd", "/etc/passwd", "weights.bin", "edgepack:", "edgepack:nope", "",
             "edgepack:../x", "\u0000"]


def _all_graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    out = [g]
    for node in g.node:
        for attr in node.attribute:
            subs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subs:
                out += _all_graphs(sub)
    return out


def _edit_model(m: onnx.ModelProto, rng: random.Random) -> None:
    graphs = _all_graphs(m.graph)
    g = rng.choice(graphs)
    inits = list(g.initializer)
    kind = rng.randrange(11)
    if kind == 0 and inits:
        del g.initializer[rng.randrange(len(inits))]
    elif kind == 1 and g.node:
        node = rng.choice(g.node)
        if node.input:
            other = node.output[0] if node.output else "x"
            node.input[rng.randrange(len(node.input))] = rng.choice(["missing", "", other])
    elif kind == 2 and inits:
        t = rng.choice(inits)
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        entry = t.external_data.add()
        entry.key, entry.value = "location", rng.choice(LOCATIONS + ["edgepack:" + t.name])
        if rng.random() < 0.3:
            extra = t.external_data.add()
            extra.key, extra.value = rng.choice([("offset", "0"), ("length", "99999999999"), ("checksum", "x")])
        if rng.random() < 0.5:
            t.ClearField("raw_data")
    elif kind == 3 and inits:
        t = rng.choice(inits)
        dims = list(t.dims) or [1]
        t.ClearField("dims")
        t.dims.extend(rng.choice([[2 ** 40], [d * 2 for d in dims], [-1] + dims[1:], [0], dims + [1], dims[::-1]]))
    elif kind == 4 and inits:
        rng.choice(inits).data_type = rng.choice([0, 8, 16, 23, 99, TensorProto.FLOAT16, TensorProto.INT64])
    elif kind == 5 and g.node:
        node = rng.choice(g.node)
        node.op_type = rng.choice(["NoSuchOp", "Loop", "Scan", "If", "Identity", "Gemm"])
        if rng.random() < 0.3:
            node.domain = rng.choice(["com.example", "ai.onnx.ml", "com.microsoft"])
    elif kind == 6:
        m.ir_version = rng.choice([0, 1, 3, 99, 2 ** 40])
        if m.opset_import:
            m.opset_import[0].version = rng.choice([1, 6, 99, 2 ** 40])
    elif kind == 7:
        _nest(m, rng.choice([3, 20, 25]))  # 3 messages a level: 25 levels pass the walker's limit of 64
    elif kind == 8 and inits:
        g.initializer.append(rng.choice(inits))  # the same name twice
    elif kind == 9 and g.node:
        node = rng.choice(g.node)
        value = helper.make_tensor("c", TensorProto.FLOAT, [2], [1.0, 2.0])
        if rng.random() < 0.5:
            value.data_location = TensorProto.EXTERNAL
            entry = value.external_data.add()
            entry.key, entry.value = "location", rng.choice(LOCATIONS)
        node.attribute.append(helper.make_attribute(rng.choice(["value", "t", "extra"]), value))
    else:
        m.graph.ClearField("output")


def _nest(m: onnx.ModelProto, depth: int) -> None:
    """Wrap the graph's nodes in `depth` levels of If subgraphs."""
    g = m.graph
    if not g.output or not g.input:
        return
    out = g.output[0]
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    other = helper.make_graph([helper.make_node("Identity", [g.input[0].name], [out.name])], "other", [], [out])
    body = list(g.node)
    for level in range(depth):
        sub = helper.make_graph(body, f"level{level}", [], [out])
        body = [helper.make_node("Constant", [], [f"cond{level}"], value=cond),
                helper.make_node("If", [f"cond{level}"], [out.name], then_branch=sub, else_branch=other)]
    del g.node[:]
    g.node.extend(body)


def edit(seed, rng: random.Random) -> tuple[dict, bytes, list[bytes]] | None:
    """(manifest, graph, tensors) of an edited copy of the seed's model, or None if onnx cannot read it."""
    try:
        model = onnx.load_from_string(bundles.joined(seed.manifest, seed.graph, seed.tensors))
    except Exception:
        return None
    try:
        _edit_model(model, rng)
        serialized = model.SerializeToString()
    except Exception:  # onnx or protobuf refusing an edit (too deep, say): not a mutant
        return None
    external = [(e, raw) for e, raw in zip(seed.manifest["tensors"], seed.tensors) if e["binding"] == "external"]
    return bundles.cut(serialized, seed.manifest, external)
