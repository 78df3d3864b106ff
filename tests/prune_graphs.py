"""Small graphs for the pruning tests, built with onnx.helper: each one exercises one dependency rule.

Every builder returns (model, feeds). Weights are random but seeded. `masked(model, kept)` builds the
reference the equivalence tests compare against: the original graph with the removed channels zeroed
where layers read them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        self.count += 1
        name = name or f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape: int, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op: str, inputs: list[str], n_out: int = 1, **attrs) -> str | list[str]:
        self.count += 1
        outs = [f"{op.lower()}{self.count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"{op}_{self.count}", **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x: str, cin: int, cout: int, k: int = 3, group: int = 1, bias: bool = True, **attrs) -> str:
        w = self.weight(cout, cin // group, k, k)
        ins = [x, w] + ([self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32))] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], pads=[k // 2] * 4, group=group, **attrs)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        return self.op("BatchNormalization", [
            x, self.const((r.random(c) + 0.5).astype(np.float32)),
            self.const((r.standard_normal(c) * 0.1).astype(np.float32)),
            self.const((r.standard_normal(c) * 0.1).astype(np.float32)),
            self.const((r.random(c) + 0.5).astype(np.float32))])

    def gemm(self, x: str, k: int, n: int) -> str:
        w = self.weight(n, k)  # drawn before the bias: the seeded graphs stay the same
        return self.op("Gemm", [x, w, self.const((self.rng.standard_normal(n) * 0.1).astype(np.float32))], transB=1)

    def linear(self, x: str, k: int, n: int) -> str:
        m = self.op("MatMul", [x, self.weight(k, n)])
        return self.op("Add", [m, self.const((self.rng.standard_normal(n) * 0.1).astype(np.float32))])

    def model(self, inputs: dict[str, list], output: str, out_shape: list) -> onnx.ModelProto:
        vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()]
        out = [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)]
        g = helper.make_graph(self.nodes, "g", vi, out, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def _image(b: Builder, c: int, hw: int = 8, n: int = 3) -> dict[str, np.ndarray]:
    return {"x": b.rng.standard_normal((n, c, hw, hw)).astype(np.float32)}


def residual_block(seed: int = 0):
    """x -> Conv-BN-Relu (a) -> Conv-Relu -> Conv (b); Relu(a + b) -> Conv -> GlobalAveragePool -> Flatten."""
    b = Builder(seed)
    a = b.op("Relu", [b.bn(b.conv("x", 3, 16), 16)])
    h = b.conv(b.op("Relu", [b.conv(a, 16, 12)]), 12, 16)
    y = b.op("Relu", [b.op("Add", [a, h])])
    out = b.op("Flatten", [b.op("GlobalAveragePool", [b.conv(y, 16, 5)])])
    return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 5]), _image(b, 3)


def depthwise_separable(seed: int = 0):
    """Conv 3->8, depthwise 3x3 (group 8, multiplier 2 -> 16), Relu, pointwise 1x1 16->10."""
    b = Builder(seed)
    h = b.op("Relu", [b.conv("x", 3, 8)])
    d = b.op("Relu", [b.conv(h, 8, 16, group=8)])
    out = b.conv(d, 16, 10, k=1)
    return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 10, 8, 8]), _image(b, 3)


def grouped(seed: int = 0):
    """Conv 3->12, grouped Conv 12->12 in 4 groups (3 in, 3 out each), Relu, Conv 12->4."""
    b = Builder(seed)
    h = b.op("Relu", [b.conv("x", 3, 12)])
    g = b.op("Relu", [b.conv(h, 12, 12, group=4)])
    out = b.conv(g, 12, 4)
    return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 4, 8, 8]), _image(b, 3)


def concat_block(seed: int = 0):
    """Two convs (6 and 10 channels) and the input (3) concatenated on channels, then a Conv 19->4."""
    b = Builder(seed)
    p = b.op("Relu", [b.conv("x", 3, 6)])
    q = b.op("Sigmoid", [b.conv("x", 3, 10, k=1)])
    c = b.op("Concat", [p, "x", q], axis=1)
    out = b.conv(c, 19, 4)
    return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 4, 8, 8]), _image(b, 3)


def flatten_gemm(seed: int = 0, reshape: bool = False):
    """Conv 1->8, Relu, MaxPool 2 -> [N, 8, 4, 4], Flatten (or Reshape [-1, 128]), Gemm 128->16, Relu, Gemm 16->3."""
    b = Builder(seed)
    h = b.op("MaxPool", [b.op("Relu", [b.conv("x", 1, 8)])], kernel_shape=[2, 2], strides=[2, 2])
    f = b.op("Reshape", [h, b.const(np.array([-1, 128], np.int64))]) if reshape else b.op("Flatten", [h])
    out = b.gemm(b.op("Relu", [b.gemm(f, 128, 16)]), 16, 3)
    return b.model({"x": ["N", 1, 8, 8]}, out, ["N", 3]), _image(b, 1)


def split_block(seed: int = 0):
    """Conv 3->12, Split into 4 + 8 channels, each through its own Conv, added."""
    b = Builder(seed)
    h = b.op("Relu", [b.conv("x", 3, 12)])
    s1, s2 = b.op("Split", [h, b.const(np.array([4, 8], np.int64))], n_out=2, axis=1)
    out = b.op("Add", [b.conv(s1, 4, 5), b.conv(s2, 8, 5)])
    return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 5, 8, 8]), _image(b, 3)


def transformer_mlp(d: int = 32, hidden: int = 128, seed: int = 0):
    """A pre-norm transformer MLP block: x + W_down(Gelu(W_up(LayerNorm(x)))), Gelu written out with Erf."""
    b = Builder(seed)
    n = b.op("LayerNormalization", ["x", b.const(np.ones(d, np.float32)), b.const(np.zeros(d, np.float32))], axis=-1)
    h = b.linear(n, d, hidden)
    erf = b.op("Erf", [b.op("Div", [h, b.const(np.array(np.sqrt(2.0), np.float32))])])
    gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, b.const(np.array(1.0, np.float32))])]),
                        b.const(np.array(0.5, np.float32))])
    out = b.op("Add", ["x", b.linear(gelu, hidden, d)])
    feeds = {"x": b.rng.standard_normal((2, 5, d)).astype(np.float32)}
    return b.model({"x": ["N", "T", d]}, out, ["N", "T", d]), feeds


def masked(model: onnx.ModelProto, kept: dict[str, tuple[int, np.ndarray]]) -> onnx.ModelProto:
    """`model` with the removed positions of every shrunk tensor zeroed where a layer with weights reads it."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    readers = [n for n in out.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")]
    for name, (axis, keep) in kept.items():
        shape_source = [n for n in readers if n.input[0] == name]
        if not shape_source:
            continue
        size = _size_along(model, name, axis)
        mask = np.zeros(size, np.float32)
        mask[keep] = 1
        rank = _rank(model, name)
        shape = [1] * rank
        shape[axis] = size
        mask_name, masked_name = f"{name}__mask", f"{name}__masked"
        out.graph.initializer.append(numpy_helper.from_array(mask.reshape(shape), mask_name))
        out.graph.node.append(helper.make_node("Mul", [name, mask_name], [masked_name]))
        for n in shape_source:
            n.input[0] = masked_name
    return _toposort(out)


def _inferred(model):
    return onnx.shape_inference.infer_shapes(model)


def _rank(model, name):
    vi = next(v for v in _inferred(model).graph.value_info if v.name == name)
    return len(vi.type.tensor_type.shape.dim)


def _size_along(model, name, axis):
    vi = next(v for v in _inferred(model).graph.value_info if v.name == name)
    return vi.type.tensor_type.shape.dim[axis].dim_value


def _toposort(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    ready = {i.name for i in g.input} | {t.name for t in g.initializer}
    pending, ordered = list(g.node), []
    while pending:
        for n in pending:
            if all(i in ready or not i for i in n.input):
                ordered.append(n)
                ready.update(n.output)
                pending.remove(n)
                break
    del g.node[:]
    g.node.extend(ordered)
    return model
