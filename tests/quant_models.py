"""Models for the quantization tests: real trained weights where accuracy is claimed, graphs built with
onnx.helper where a quantizer trap is the point. Expensive ones are built once per test session."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_CACHE = tempfile.mkdtemp(prefix="edgepack-quant-tests-")
atexit.register(shutil.rmtree, _CACHE, True)


def _f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset <= 12 else 8
    onnx.checker.check_model(model)
    return model


# --- a residual CNN trained on scikit-learn's digits ----------------------------------------------------

@functools.cache
def digits_cnn() -> dict:
    """Train (seconds) and export a CNN: 4 conv layers with BatchNorm, a residual connection, a two-layer head
    (about 1.2 MB of fp32 weights: on much smaller models the bundle's fixed costs, manifest and graph, weigh
    more than the weights do).
    Returns paths of the .onnx, 200 calibration samples from the training split, and the held-out split
    (with labels), plus the test accuracy torch measured."""
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from make_demo_model import DigitsCNN, train

    torch.manual_seed(0)
    net = DigitsCNN(hidden=512)   # the demo model with a wider head
    accuracy, (xtr, xte, ytr, yte) = train(net, epochs=8, lr=3e-3)
    folder = os.path.join(_CACHE, "digits")
    os.makedirs(folder)
    path = os.path.join(folder, "digits_cnn.onnx")
    torch.onnx.export(net, (torch.from_numpy(xte[:1]),), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    np.savez(os.path.join(folder, "calib.npz"), x=xtr[:200])
    np.savez(os.path.join(folder, "test.npz"), x=xte, labels=yte)
    return {"model": path, "calibration": os.path.join(folder, "calib.npz"),
            "eval": os.path.join(folder, "test.npz"), "torch_accuracy": accuracy}


# --- a small transformer decoder ------------------------------------------------------------------------

@functools.cache
def tiny_decoder() -> dict:
    """A causal decoder: token embedding, 3 blocks of (LayerNorm, multi-head attention, LayerNorm, MLP), a
    final LayerNorm and an output projection; about 17 MB of fp32 weights (random, seeded)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    vocab, d, heads, layers, ctx = 4096, 256, 4, 3, 32

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            n, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            q, k, v = (z.reshape(n, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / (d // heads) ** 0.5
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, d))
            return x + self.mlp(self.ln2(x))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.pos = nn.Embedding(vocab, d), nn.Parameter(torch.randn(ctx, d) * 0.02)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln, self.out = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

        def forward(self, ids):
            x = self.emb(ids) + self.pos[: ids.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.out(self.ln(x))

    net = Decoder().eval()
    folder = os.path.join(_CACHE, "decoder")
    os.makedirs(folder)
    path = os.path.join(folder, "decoder.onnx")
    ids = torch.randint(0, vocab, (1, 16))
    torch.onnx.export(net, (ids,), path, input_names=["ids"], output_names=["logits"],
                      dynamic_axes={"ids": {0: "N", 1: "T"}, "logits": {0: "N", 1: "T"}}, opset_version=17,
                      dynamo=False)
    rng = np.random.default_rng(1)
    np.savez(os.path.join(folder, "eval.npz"), ids=rng.integers(0, vocab, (4, 16)))
    weights = sum(p.numel() * 4 for p in net.parameters())
    return {"model": path, "eval": os.path.join(folder, "eval.npz"), "weight_bytes": weights}


# --- graphs where a quantizer trap is the point ---------------------------------------------------------

def constant_weights(seed: int = 0) -> onnx.ModelProto:
    """Conv and MatMul whose weights are Constant nodes, as models converted from other frameworks have."""
    rng = np.random.default_rng(seed)
    const = lambda name, a: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(a, name))
    nodes = [
        const("cw", (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)),
        const("cb", rng.standard_normal(8).astype(np.float32)),
        const("mw", (rng.standard_normal((8 * 6 * 6, 10)) * 0.05).astype(np.float32)),
        const("shape", np.array([0, -1], np.int64)),
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "mw"], ["y"]),
    ]
    return _model(nodes, [_f32("x", ["N", 3, 8, 8])], [_f32("y", ["N", 10])])


def if_branches(seed: int = 0) -> onnx.ModelProto:
    """An If whose branches hold MatMul weights: one branch as a Constant node, the other captured from the
    outer scope; a MatMul in the main graph before it."""
    rng = np.random.default_rng(seed)
    w = lambda: (rng.standard_normal((32, 32)) / 6).astype(np.float32)
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["w_then"], value=numpy_helper.from_array(w(), "w_then")),
         helper.make_node("MatMul", ["h", "w_then"], ["t_out"])], "then", [], [_f32("t_out", ["N", 32])])
    else_g = helper.make_graph([helper.make_node("MatMul", ["h", "w_outer"], ["e_out"])], "else", [],
                               [_f32("e_out", ["N", 32])])
    inits = [numpy_helper.from_array(w(), "w0"), numpy_helper.from_array(w(), "w_outer")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    return _model(nodes, [helper.make_tensor_value_info("c", TensorProto.BOOL, []), _f32("x", ["N", 32])],
                  [_f32("y", ["N", 32])], inits)


def opset11_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv + Gemm at opset 11: per-channel QDQ needs opset 13."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "cb"),
             numpy_helper.from_array((rng.standard_normal((10, 8 * 6 * 6)) * 0.05).astype(np.float32), "gw"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1)]
    return _model(nodes, [_f32("x", ["N", 3, 8, 8])], [_f32("y", ["N", 10])], inits, opset=11)


def batched_weight(seed: int = 0) -> onnx.ModelProto:
    """A MatMul with a 3-D weight (one matrix per batch entry), which no 4-bit kernel takes, then a 2-D one."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((2, 32, 32)) / 6).astype(np.float32), "w3"),
             numpy_helper.from_array((rng.standard_normal((32, 32)) / 6).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w3"], ["h"], name="batched"),
             helper.make_node("MatMul", ["h", "w2"], ["y"], name="plain")]
    return _model(nodes, [_f32("x", [2, "N", 32])], [_f32("y", [2, "N", 32])], inits)


def no_weights() -> onnx.ModelProto:
    """Nothing a quantizer could quantize."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
    return _model(nodes, [_f32("x", ["N", 8])], [_f32("y", ["N", 8])])


def fp16_overflow(seed: int = 0) -> onnx.ModelProto:
    """A MatMul whose activations reach about 1e6 before a scale brings them back: fp16 overflows there."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((16, 16)) * 1e5).astype(np.float32), "big"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "small"),
             numpy_helper.from_array((rng.standard_normal((16, 4)) * 0.3).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "big"], ["h"]), helper.make_node("Mul", ["h", "small"], ["s"]),
             helper.make_node("MatMul", ["s", "w2"], ["y"])]
    return _model(nodes, [_f32("x", ["N", 16])], [_f32("y", ["N", 4])], inits)


def random_npz(path: str, count: int = 16, seed: int = 0, **shapes) -> str:
    """An .npz of `count` float32 samples per input, each named input of the given per-sample shape."""
    rng = np.random.default_rng(seed)
    np.savez(path, **{k: rng.standard_normal((count, *s)).astype(np.float32) for k, s in shapes.items()})
    return path


def bundle_model(path) -> onnx.ModelProto:
    """The ONNX model a bundle holds: its graph with every inline tensor's bytes spliced back in."""
    from edgepack.runtime import open_bundle

    with open_bundle(path) as bundle:
        graph = bytes(bundle.read_graph())
        model, pos = bytearray(), 0
        for t in sorted((t for t in bundle.manifest.tensors if t.binding == "inline"), key=lambda t: t.splice):
            model += graph[pos:t.splice] + bundle.read_blob(t)
            pos = t.splice
        model += graph[pos:]
    return onnx.load_from_string(bytes(model))
