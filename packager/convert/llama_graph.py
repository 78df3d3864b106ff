"""An ONNX graph, with a KV cache, for a Llama-family causal language model, written with onnx.helper from
its weights (no tracing: every node is one we chose, in standard ONNX ops that every onnxruntime runs).

The interface is the one Hugging Face Optimum and onnxruntime-genai use:

    inputs   input_ids [batch, seq] int64, attention_mask [batch, past + seq] int64,
             position_ids [batch, seq] int64, past_key_values.N.key / .value [batch, kv_heads, past, head_dim]
    outputs  logits [batch, seq, vocab], present.N.key / .value [batch, kv_heads, past + seq, head_dim]

Each layer: RMSNorm, attention with rotary position embeddings (the half-split form of Hugging Face's
`rotate_half`) and grouped-query heads (queries grouped per key/value head, so keys and values are never
repeated), RMSNorm, SiLU-gated MLP. A tied LM head reads the embedding table itself (Gemm transB), so the
table is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
PAST = "past_key_values.{}.{}"
PRESENT = "present.{}.{}"


@dataclass(frozen=True)
class LlamaShape:
    """The hyperparameters the graph needs, read from a Hugging Face config.json."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    rope_theta: float
    max_positions: int
    tied: bool
    attention_bias: bool = False
    mlp_bias: bool = False

    def inv_freq(self) -> np.ndarray:
        return 1.0 / (self.rope_theta ** (np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim))


class _Builder:
    """Writes nodes and initializers straight into one ModelProto: building lists and handing them to
    helper.make_graph and make_model would copy every weight twice (measured: a 92 MB model peaked at 3x its
    size while being assembled)."""

    def __init__(self) -> None:
        self.model = onnx.ModelProto()
        self.graph = self.model.graph
        self.count = 0

    def node(self, op: str, inputs: list[str], name: str = "", outputs: int = 1, domain: str = "",
             **attrs: Any) -> list[str]:
        self.count += 1
        base = name or f"{op}_{self.count}"
        outs = [f"{base}/out{i}" if outputs > 1 else f"{base}/out" for i in range(outputs)]
        self.add(helper.make_node(op, inputs, outs, name=base, domain=domain, **attrs))
        return outs

    def add(self, node: onnx.NodeProto) -> None:
        self.graph.node.append(node)

    def one(self, op: str, inputs: list[str], name: str = "", **attrs: Any) -> str:
        return self.node(op, inputs, name, **attrs)[0]

    def const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.add().CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def rms_norm(self, x: str, weight: str, eps: str, name: str) -> str:
        sq = self.one("Mul", [x, x], f"{name}/square")
        mean = self.one("ReduceMean", [sq, "const.axis_last"], f"{name}/mean", keepdims=1)
        root = self.one("Sqrt", [self.one("Add", [mean, eps], f"{name}/add_eps")], f"{name}/sqrt")
        normed = self.one("Div", [x, root], f"{name}/div")
        return self.one("Mul", [normed, weight], f"{name}/scale")

    def linear(self, x: str, weight: str, bias: str | None, name: str) -> str:
        y = self.one("MatMul", [x, weight], f"{name}/MatMul")
        return self.one("Add", [y, bias], f"{name}/bias") if bias else y


Weights = Callable[[str], np.ndarray]


def build(shape: LlamaShape, weight: Weights, name: str = "llama") -> onnx.ModelProto:
    """The graph for `shape`; weight(hf_name) gives each tensor as float32, as named in the safetensors
    (`model.layers.0.self_attn.q_proj.weight`...). Linear weights are stored transposed ([in, out])."""
    b = _Builder()
    s = shape
    rep = s.heads // s.kv_heads
    b.const("const.axis_last", np.array([-1], np.int64))
    eps = b.const("const.eps", np.array(s.eps, np.float32))
    embed = b.const("model.embed_tokens.weight", weight("model.embed_tokens.weight"))
    # angles as Hugging Face computes them (float32 position x inv_freq), no table: [B, S, hd]
    b.const("rope.inv_freq", s.inv_freq().astype(np.float32))
    x = b.one("Gather", [embed, "input_ids"], "embed", axis=0)
    pos = b.one("Unsqueeze", [b.one("Cast", ["position_ids"], "rope/pos_float", to=TensorProto.FLOAT),
                              "const.axis_last"], "rope/pos")
    freqs = b.one("Mul", [pos, "rope.inv_freq"], "rope/freqs")
    angles = b.one("Concat", [freqs, freqs], "rope/angles", axis=-1)
    cos, sin = b.one("Cos", [angles], "rope/cos"), b.one("Sin", [angles], "rope/sin")
    b.const("const.axes_1", np.array([1], np.int64))
    b.const("const.axes_12", np.array([1, 2], np.int64))
    b.const("const.axes_2", np.array([2], np.int64))
    cos4, sin4 = (b.one("Unsqueeze", [t, "const.axes_1"], f"rope/{n}4") for t, n in ((cos, "cos"), (sin, "sin")))
    cos5, sin5 = (b.one("Unsqueeze", [t, "const.axes_12"], f"rope/{n}5") for t, n in ((cos, "cos"), (sin, "sin")))
    bias = _mask(b)
    b.const("const.q_shape", np.array([0, 0, s.kv_heads, rep, s.head_dim], np.int64))
    b.const("const.kv_shape", np.array([0, 0, s.kv_heads, s.head_dim], np.int64))
    b.const("const.merge_heads", np.array([0, 0, s.heads * s.head_dim], np.int64))
    b.const("const.attn_shape", np.array([0, s.heads, -1, s.head_dim], np.int64))
    b.const("const.scale", np.array(1.0 / np.sqrt(s.head_dim), np.float32))
    half = s.head_dim // 2
    b.const("const.split", np.array([half, half], np.int64))

    def rope(t: str, c: str, sn: str, axis_name: str) -> str:
        lo, hi = b.node("Split", [t, "const.split"], f"{axis_name}/rope_split", outputs=2, axis=-1)
        rotated = b.one("Concat", [b.one("Neg", [hi], f"{axis_name}/rope_neg"), lo], f"{axis_name}/rope_cat", axis=-1)
        return b.one("Add", [b.one("Mul", [t, c], f"{axis_name}/rope_cos"),
                             b.one("Mul", [rotated, sn], f"{axis_name}/rope_sin")], f"{axis_name}/rope")

    def lin(x: str, hf: str, has_bias: bool) -> str:
        w = b.const(f"{hf}.weight", np.ascontiguousarray(weight(f"{hf}.weight").T))
        bias_name = b.const(f"{hf}.bias", weight(f"{hf}.bias")) if has_bias else None
        return b.linear(x, w, bias_name, hf)

    for i in range(s.layers):
        p = f"model.layers.{i}"
        h = b.rms_norm(x, b.const(f"{p}.input_layernorm.weight", weight(f"{p}.input_layernorm.weight")), eps,
                       f"{p}/input_norm")
        q = lin(h, f"{p}.self_attn.q_proj", s.attention_bias)
        k = lin(h, f"{p}.self_attn.k_proj", s.attention_bias)
        v = lin(h, f"{p}.self_attn.v_proj", s.attention_bias)
        # q: [B, S, kvh, rep, hd] -> [B, kvh, rep, S, hd]; k, v: [B, S, kvh, hd] -> [B, kvh, S, hd]
        q = b.one("Transpose", [b.one("Reshape", [q, "const.q_shape"], f"{p}/q_reshape")], f"{p}/q_t",
                  perm=[0, 2, 3, 1, 4])
        k = b.one("Transpose", [b.one("Reshape", [k, "const.kv_shape"], f"{p}/k_reshape")], f"{p}/k_t",
                  perm=[0, 2, 1, 3])
        v = b.one("Transpose", [b.one("Reshape", [v, "const.kv_shape"], f"{p}/v_reshape")], f"{p}/v_t",
                  perm=[0, 2, 1, 3])
        q = b.one("Mul", [rope(q, cos5, sin5, f"{p}/q"), "const.scale"], f"{p}/q_scale")
        k = rope(k, cos4, sin4, f"{p}/k")
        k_all = b.one("Concat", [PAST.format(i, "key"), k], f"{p}/k_cache", axis=2)
        v_all = b.one("Concat", [PAST.format(i, "value"), v], f"{p}/v_cache", axis=2)
        b.add(helper.make_node("Identity", [k_all], [PRESENT.format(i, "key")], name=f"{p}/present_k"))
        b.add(helper.make_node("Identity", [v_all], [PRESENT.format(i, "value")], name=f"{p}/present_v"))
        k5 = b.one("Unsqueeze", [k_all, "const.axes_2"], f"{p}/k5")
        v5 = b.one("Unsqueeze", [v_all, "const.axes_2"], f"{p}/v5")
        kt = b.one("Transpose", [k5], f"{p}/k_tr", perm=[0, 1, 2, 4, 3])
        scores = b.one("Add", [b.one("MatMul", [q, kt], f"{p}/qk"), bias], f"{p}/masked")
        probs = b.one("Softmax", [scores], f"{p}/softmax", axis=-1)
        ctx = b.one("MatMul", [probs, v5], f"{p}/pv")                                  # [B, kvh, rep, S, hd]
        ctx = b.one("Reshape", [ctx, "const.attn_shape"], f"{p}/ctx_heads")            # [B, H, S, hd]
        ctx = b.one("Transpose", [ctx], f"{p}/ctx_t", perm=[0, 2, 1, 3])
        ctx = b.one("Reshape", [ctx, "const.merge_heads"], f"{p}/ctx_merge")
        x = b.one("Add", [x, lin(ctx, f"{p}.self_attn.o_proj", False)], f"{p}/attn_residual")
        h = b.rms_norm(x, b.const(f"{p}.post_attention_layernorm.weight",
                                  weight(f"{p}.post_attention_layernorm.weight")), eps, f"{p}/post_norm")
        gate = lin(h, f"{p}.mlp.gate_proj", s.mlp_bias)
        up = lin(h, f"{p}.mlp.up_proj", s.mlp_bias)
        act = b.one("Mul", [b.one("Mul", [gate, b.one("Sigmoid", [gate], f"{p}/mlp_sigmoid")], f"{p}/mlp_silu"), up],
                    f"{p}/mlp_gated")
        x = b.one("Add", [x, lin(act, f"{p}.mlp.down_proj", s.mlp_bias)], f"{p}/mlp_residual")
    h = b.rms_norm(x, b.const("model.norm.weight", weight("model.norm.weight")), eps, "final_norm")
    if s.tied:
        b.const("const.rows", np.array([-1, s.hidden], np.int64))
        b.const("const.vocab", np.array([s.vocab], np.int64))
        out_shape = b.one("Concat", [b.one("Shape", ["input_ids"], "lm_head/ids_shape"), "const.vocab"],
                          "lm_head/shape", axis=0)
        flat = b.one("Reshape", [h, "const.rows"], "lm_head/flatten")
        logits = b.one("Gemm", [flat, embed], "lm_head/Gemm", transB=1)
        b.add(helper.make_node("Reshape", [logits, out_shape], ["logits"], name="lm_head/out"))
    else:
        w = b.const("lm_head.weight", np.ascontiguousarray(weight("lm_head.weight").T))
        b.add(helper.make_node("MatMul", [h, w], ["logits"], name="lm_head/MatMul"))
    return _model(b, s, name)


def _mask(b: _Builder) -> str:
    """An additive mask [B, 1, 1, S, T]: 0 where query i (at absolute position T - S + i) may see key j (j at
    most that position, and attention_mask[j] set), the float minimum elsewhere."""
    b.const("const.zero", np.array(0, np.int64))
    b.const("const.one", np.array(1, np.int64))
    b.const("const.idx1", np.array([1], np.int64))
    b.const("const.fzero", np.array(0.0, np.float32))
    b.const("const.fmin", np.array(np.finfo(np.float32).min, np.float32))
    total = b.one("Squeeze", [b.one("Shape", ["attention_mask"], "mask/shape_t", start=1, end=2)], "mask/t")
    seq = b.one("Squeeze", [b.one("Shape", ["input_ids"], "mask/shape_s", start=1, end=2)], "mask/s")
    keys = b.one("Range", ["const.zero", total, "const.one"], "mask/keys")                    # [T]
    queries = b.one("Range", [b.one("Sub", [total, seq], "mask/past"), total, "const.one"], "mask/queries")
    causal = b.one("LessOrEqual", [keys, b.one("Unsqueeze", [queries, "const.idx1"], "mask/q_col")],
                   "mask/causal")                                                            # [S, T]
    pad = b.one("Unsqueeze", [b.one("Cast", ["attention_mask"], "mask/pad_bool", to=TensorProto.BOOL),
                              "const.idx1"], "mask/pad")                                     # [B, 1, T]
    allowed = b.one("And", [causal, pad], "mask/allowed")                                    # [B, S, T]
    additive = b.one("Where", [allowed, "const.fzero", "const.fmin"], "mask/additive")
    return b.one("Unsqueeze", [additive, "const.axes_12"], "mask/bias")


def _model(b: _Builder, s: LlamaShape, name: str) -> onnx.ModelProto:
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["batch", "sequence"]),
              helper.make_tensor_value_info("attention_mask", i64, ["batch", "total_sequence"]),
              helper.make_tensor_value_info("position_ids", i64, ["batch", "sequence"])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "sequence", s.vocab])]
    for i in range(s.layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(PAST.format(i, kind), f32,
                                                        ["batch", s.kv_heads, "past_sequence", s.head_dim]))
            outputs.append(helper.make_tensor_value_info(PRESENT.format(i, kind), f32,
                                                         ["batch", s.kv_heads, "total_sequence", s.head_dim]))
    b.graph.name = name
    b.graph.input.extend(inputs)
    b.graph.output.extend(outputs)
    model = b.model
    model.ir_version = 10
    model.producer_name = "edgepack"
    model.opset_import.append(helper.make_opsetid("", OPSET))
    return model
