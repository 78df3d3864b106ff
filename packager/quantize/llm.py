"""int4-weight for a language model with a KV cache: every MatMul weight, the LM head and the embedding table
become 4-bit blocks (MatMulNBits with accuracy_level 4, and GatherBlockQuantized), by GPTQ calibrated on
text (blocks4.gptq) or by round-to-nearest (method "rtn").

A tied embedding stays one tensor: the LM head's MatMulNBits weight [vocab, hidden / block, block / 2] is the
4-bit table, and the embedding lookup reads it through a Reshape to [vocab, hidden / 2] (GatherBlockQuantized
uses MatMulNBits' packing for uint8 data).

Calibration: token windows from --calibration (a .txt tokenized with the model's tokenizer, or an .npz of
token ids), or, without one, text the float model itself samples (so that GPTQ still sees the activations the
model produces); see lm_data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepack.packager.errors import QuantizationError

from .blocks4 import Quantized4, gptq, output_error, rtn, rtn8
from .lm_data import activations_hessians

MS = "com.microsoft"


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def copy_without_initializers(model: onnx.ModelProto, drop: set[str]) -> onnx.ModelProto:
    """A copy of `model` without the initializers named in `drop`: copying the weights about to be replaced
    only to delete them cost the model's size again (CopyFrom copies every field)."""
    out = onnx.ModelProto()
    _copy_fields(model, out, skip="graph")
    _copy_fields(model.graph, out.graph, skip="initializer")
    out.graph.initializer.extend(t for t in model.graph.initializer if t.name not in drop)
    return out


def _copy_fields(src: Any, dst: Any, skip: str) -> None:
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "CopyFrom"):      # a message
            getattr(dst, field.name).CopyFrom(value)
        elif hasattr(value, "extend"):      # a repeated field
            getattr(dst, field.name).extend(value)
        else:                               # a scalar
            setattr(dst, field.name, value)


def targets(model: onnx.ModelProto, block: int) -> tuple[list[onnx.NodeProto], dict[str, Any]]:
    """The MatMuls with a 2-D float weight whose input size is a multiple of `block`, and the tied table:
    {"gather": node, "gemm": node, "table": name} when one table feeds both a Gather and a Gemm(transB=1)."""
    inits = _initializers(model)
    mats = []
    for n in model.graph.node:
        if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in inits:
            t = inits[n.input[1]]
            if len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT and t.dims[0] % block == 0:
                mats.append(n)
    tied: dict[str, Any] = {}
    for n in model.graph.node:
        if n.op_type == "Gemm" and len(n.input) == 2 and n.input[1] in inits and \
                any(a.name == "transB" and a.i == 1 for a in n.attribute):
            gathers = [g for g in model.graph.node if g.op_type == "Gather" and g.input[0] == n.input[1]]
            if gathers and inits[n.input[1]].dims[1] % block == 0:
                tied = {"gemm": n, "gather": gathers[0], "table": n.input[1]}
    return mats, tied


def quantize_lm(model: onnx.ModelProto, method: str, block: int, accuracy_level: int,
                windows: list[np.ndarray] | None, wide: frozenset[str] = frozenset(),
                hessians: dict[str, np.ndarray] | None = None, rank: bool = False
                ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Quantize a copy of `model`; windows: calibration token ids (needed by "gptq"); wide: MatMul node names
    kept at 8 bits; hessians: X^T X per MatMul input, when already computed (rank: compute them for "rtn"
    too). details["errors"]: each 4-bit MatMul's relative output error on the calibration inputs
    (blocks4.output_error), when hessians exist."""
    if method not in ("gptq", "rtn"):
        raise QuantizationError(f"int4 method {method!r} is unknown for language models (gptq or rtn)")
    mats, tied = targets(model, block)
    tables = untied_tables(model, block, tied)
    if not mats and not tied:
        raise QuantizationError("no MatMul weight in this language model can be quantized to 4 bits")
    inputs = [n.input[0] for n in mats] + ([tied["gemm"].input[0]] if tied else [])
    if hessians is None:
        hessians = activations_hessians(model, windows, inputs) if method == "gptq" or wide or rank else {}
    errors: dict[str, float] = {}
    inits = _initializers(model)  # the float weights, read from `model`, which stays as it is
    drop = {n.input[1] for n in mats} | ({tied["table"]} if tied else set()) | {g.input[0] for g in tables}
    model = copy_without_initializers(model, drop)  # the caller's nodes are found in it by their content
    packed_bytes, weights = 0, 0
    new_inits: list[onnx.TensorProto] = []

    def quant(w_nk: np.ndarray, x_name: str) -> Quantized4:
        if method == "gptq":
            return gptq(w_nk, hessians[x_name], block)
        return rtn(w_nk, block)

    for n in mats:
        w = numpy_helper.to_array(inits[n.input[1]])               # [K, N]
        bits = 8 if n.name in wide else 4
        if bits == 8:
            b, s, z = rtn8(np.ascontiguousarray(w.T), block)
        else:
            q = quant(np.ascontiguousarray(w.T), n.input[0])
            b, s, z = q.packed()
            if n.input[0] in hessians:
                errors[n.name] = output_error(np.ascontiguousarray(w.T), q, hessians[n.input[0]])
        base = n.input[1]
        new_inits += [numpy_helper.from_array(b, f"{base}_Q4"), numpy_helper.from_array(s, f"{base}_scales"),
                      numpy_helper.from_array(z, f"{base}_zero_points")]
        packed_bytes, weights = packed_bytes + b.nbytes + s.nbytes + z.nbytes, weights + w.size
        _replace(model, n, helper.make_node(
            "MatMulNBits", [n.input[0], f"{base}_Q4", f"{base}_scales", f"{base}_zero_points"], list(n.output),
            name=n.name + "_Q4", domain=MS, K=w.shape[0], N=w.shape[1], bits=bits, block_size=block,
            accuracy_level=accuracy_level))
    if tied:
        name = tied["table"]
        table = numpy_helper.to_array(inits[name])                   # [V, D]
        vocab, hidden = table.shape
        q = quant(table, tied["gemm"].input[0])
        b, s, z = q.packed()
        new_inits += [numpy_helper.from_array(b, f"{name}_Q4"), numpy_helper.from_array(s, f"{name}_scales"),
                      numpy_helper.from_array(z, f"{name}_zero_points"),
                      numpy_helper.from_array(np.array([vocab, hidden // 2], np.int64), f"{name}_Q4_rows"),
                      numpy_helper.from_array(np.array([vocab, hidden // block], np.int64), f"{name}_scale_rows"),
                      numpy_helper.from_array(np.array([vocab, -1], np.int64), f"{name}_zp_rows")]
        packed_bytes, weights = packed_bytes + b.nbytes + s.nbytes + z.nbytes, weights + table.size
        gemm, gather = tied["gemm"], tied["gather"]
        _replace(model, gemm, helper.make_node(
            "MatMulNBits", [gemm.input[0], f"{name}_Q4", f"{name}_scales", f"{name}_zero_points"],
            list(gemm.output), name=gemm.name + "_Q4", domain=MS, K=hidden, N=vocab, bits=4, block_size=block,
            accuracy_level=accuracy_level))
        rows = [helper.make_node("Reshape", [f"{name}_{a}", f"{name}_{b_}"], [f"{name}_{a}_2d"], name=f"{name}_{a}_2d")
                for a, b_ in (("Q4", "Q4_rows"), ("scales", "scale_rows"), ("zero_points", "zp_rows"))]
        lookup = helper.make_node(
            "GatherBlockQuantized", [f"{name}_Q4_2d", gather.input[1], f"{name}_scales_2d", f"{name}_zero_points_2d"],
            list(gather.output), name=gather.name + "_Q4", domain=MS, gather_axis=0, quantize_axis=1,
            block_size=block, bits=4)
        at = list(model.graph.node).index(gather)
        model.graph.node.remove(gather)
        for k, node in enumerate([*rows, lookup]):
            model.graph.node.insert(at + k, node)
    for gather in tables:  # an untied embedding: looked up only, so round-to-nearest (no activations to weigh)
        name = gather.input[0]
        table = numpy_helper.to_array(inits[name])                   # [V, D]
        vocab, hidden = table.shape
        b, s, z = rtn(table, block).packed()
        new_inits += [numpy_helper.from_array(b.reshape(vocab, hidden // 2), f"{name}_Q4"),
                      numpy_helper.from_array(s.reshape(vocab, hidden // block), f"{name}_scales"),
                      numpy_helper.from_array(z.reshape(vocab, -1), f"{name}_zero_points")]
        packed_bytes, weights = packed_bytes + b.nbytes + s.nbytes + z.nbytes, weights + table.size
        _replace(model, gather, helper.make_node(
            "GatherBlockQuantized", [f"{name}_Q4", gather.input[1], f"{name}_scales", f"{name}_zero_points"],
            list(gather.output), name=gather.name + "_Q4", domain=MS, gather_axis=0, quantize_axis=1,
            block_size=block, bits=4))
    model.graph.initializer.extend(new_inits)
    if not any(o.domain == MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS, 1))
    details = {"method": method, "block_size": block, "accuracy_level": accuracy_level,
               "quantized_matmuls": len(mats) + (1 if tied else 0), "tied_embedding_quantized": bool(tied),
               "untied_embeddings_quantized": len(tables),
               "bits_per_weight": round(8.0 * packed_bytes / weights, 3) if weights else None,
               "quantized_weights": int(weights),
               "calibration_windows": len(windows) if windows is not None and method == "gptq" else 0,
               "kept_8bit": sorted(wide), "errors": errors, "hessians": hessians}
    return model, details


def untied_tables(model: onnx.ModelProto, block: int, tied: dict[str, Any]) -> list[onnx.NodeProto]:
    """Gathers (axis 0) from a 2-D float initializer that nothing else reads and whose rows are a multiple of
    `block`: untied embedding tables, which become GatherBlockQuantized lookups of a 4-bit table."""
    inits = _initializers(model)
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    out = []
    for n in model.graph.node:
        if n.op_type != "Gather" or not n.input or n.input[0] not in inits or n.input[0] == tied.get("table"):
            continue
        t = inits[n.input[0]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        if axis == 0 and len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT and \
                t.dims[1] % block == 0 and uses[n.input[0]] == 1:
            out.append(n)
    return out


def _replace(model: onnx.ModelProto, old: onnx.NodeProto, new: onnx.NodeProto) -> None:
    at = list(model.graph.node).index(old)
    model.graph.node.remove(old)
    model.graph.node.insert(at, new)
