"""Token data for quantizing a language model: calibration windows from a .txt or .npz, or sampled from the
float model itself; the input statistics GPTQ needs (X^T X per MatMul input); and perplexity with plain
onnxruntime, to report what quantization cost."""

from __future__ import annotations

import math
import os
from typing import Any
from collections.abc import Sequence

import numpy as np
import onnx
from edgepack.runtime.errors import OptionError
from onnx import helper

WINDOW = 128
MAX_WINDOWS = 32


def _feeds(model: onnx.ModelProto, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Inputs for one window with an empty cache."""
    feeds: dict[str, np.ndarray] = {"input_ids": ids[None].astype(np.int64),
                                    "attention_mask": np.ones((1, len(ids)), np.int64),
                                    "position_ids": np.arange(len(ids), dtype=np.int64)[None]}
    for i in model.graph.input:
        if i.name.startswith("past_key_values."):
            dims = [d.dim_value if d.HasField("dim_value") else 0 for d in i.type.tensor_type.shape.dim]
            dims[0] = 1
            feeds[i.name] = np.zeros(dims, np.float32)
    names = {i.name for i in model.graph.input}
    return {k: v for k, v in feeds.items() if k in names}


def _session(model: onnx.ModelProto, outputs: Sequence[str] = ()) -> Any:
    """A session on `model` that also returns the named intermediate `outputs`: they are added to the model
    for as long as it takes to serialize it (a copy of the model would cost its size again)."""
    import onnxruntime as ort

    graph_outputs = model.graph.output
    count = len(graph_outputs)
    known = {o.name for o in graph_outputs}
    try:  # extend too: it keeps what it appended before a failure (MemoryError, KeyboardInterrupt)
        graph_outputs.extend(helper.make_empty_tensor_value_info(n) for n in dict.fromkeys(outputs) if n not in known)
        data = model.SerializeToString()
    finally:
        del graph_outputs[count:]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def windows_from(path: str, llm: dict[str, Any], window: int = WINDOW, limit: int = MAX_WINDOWS) -> list[np.ndarray]:
    """Calibration token windows from a .txt file (the bundle's tokenizer) or an .npz of token ids."""
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise OptionError(f"{path}: no such calibration file (a .txt of text or an .npz of token ids)")
    if suffix == ".npz":
        with np.load(path) as data:
            ids = np.concatenate([np.asarray(data[k]).reshape(-1) for k in data.files]).astype(np.int64)
    elif suffix == ".txt":
        from edgepack.runtime.tokenizer import tokenizer_of

        with open(path, encoding="utf-8") as f:
            ids = np.asarray(tokenizer_of(llm, path).encode(f.read()), np.int64)
    else:
        raise OptionError(f"{path}: calibration for a language model is text (.txt) or token ids (.npz)")
    out = [ids[s:s + window] for s in range(0, len(ids) - window + 1, window)][:limit]
    if not out and len(ids) >= 8:
        out = [ids]
    if not out:
        raise OptionError(f"{path}: too little calibration text ({len(ids)} tokens; give at least {window})")
    return out


def sampled_windows(model: onnx.ModelProto, llm: dict[str, Any], count: int = 16, window: int = WINDOW,
                    seed: int = 0) -> list[np.ndarray]:
    """Text the float model writes itself (temperature 1, from its BOS token or token 0): calibration
    without user data. Each window is generated without a cache (small models; a few seconds)."""
    rng = np.random.default_rng(seed)
    session = _session(model)
    start = llm.get("bos_token_id")
    start = int(start) if start is not None else 0
    batch = np.full((count, 1), start, np.int64)
    first = rng.integers(0, _vocab(model), (count, 1))  # a random second token spreads the samples
    seqs = np.concatenate([batch, first], axis=1)
    empty = {k: np.repeat(v, count, axis=0) for k, v in _feeds(model, seqs[0]).items()
             if k.startswith("past_key_values.")}
    past = empty
    ids = seqs
    for _ in range(window - seqs.shape[1]):
        total = seqs.shape[1]
        feeds = {"input_ids": ids, "attention_mask": np.ones((count, total), np.int64),
                 "position_ids": np.broadcast_to(np.arange(total - ids.shape[1], total), ids.shape).astype(np.int64),
                 **past}
        names = [o.name for o in session.get_outputs()]
        out = dict(zip(names, session.run(None, feeds)))
        logits = out["logits"][:, -1].astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        nxt = np.array([rng.choice(p.shape[1], p=row) for row in p], np.int64)[:, None]
        seqs = np.concatenate([seqs, nxt], axis=1)
        past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
        ids = nxt
    return [s for s in seqs]


def _vocab(model: onnx.ModelProto) -> int:
    for o in model.graph.output:
        if o.name == "logits":
            return o.type.tensor_type.shape.dim[-1].dim_value
    raise OptionError("the model has no logits output")


def activations_hessians(model: onnx.ModelProto, windows: list[np.ndarray] | None,
                         names: Sequence[str]) -> dict[str, np.ndarray]:
    """X^T X (float64) of each named tensor over the calibration windows (rows: tokens)."""
    if not windows:
        raise OptionError("GPTQ needs calibration windows")
    unique = list(dict.fromkeys(names))
    session = _session(model, unique)
    hess: dict[str, np.ndarray] = {}
    for ids in windows:
        values = dict(zip(unique, session.run(unique, _feeds(model, ids))))
        for n in unique:
            x = values[n].reshape(-1, values[n].shape[-1]).astype(np.float64)
            hess[n] = hess.get(n, 0) + x.T @ x
    return hess


def model_perplexity(model: onnx.ModelProto, windows: list[np.ndarray]) -> float:
    """Perplexity of `model` (plain onnxruntime) on the windows, each scored from an empty cache."""
    session = _session(model)
    total, count = 0.0, 0
    for ids in windows:
        logits = session.run(["logits"], _feeds(model, ids))[0][0, :-1].astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        target = ids[1:]
        total += float((logz - logits[np.arange(len(target)), target]).sum())
        count += len(target)
    return math.exp(total / count)


def outlier_ratio(x: np.ndarray) -> float:
    """How far one token's activations stand out: the largest per-token max |x| over the median per-token
    max |x| (x: [tokens, features]). A one-scale-per-tensor int8 activation, as int8-dynamic uses, spends its
    range on the outlier and rounds every other token to a few levels."""
    per_token = np.abs(x.reshape(-1, x.shape[-1])).max(axis=1)
    median = float(np.median(per_token))
    return float(per_token.max()) / median if median > 0 else float("inf")


def outlier_inputs(model: onnx.ModelProto, windows: list[np.ndarray], names: Sequence[str],
                   threshold: float) -> dict[str, float]:
    """The named tensors whose outlier_ratio on some calibration window exceeds `threshold`, with the ratio."""
    unique = list(dict.fromkeys(names))
    session = _session(model, unique)
    worst: dict[str, float] = {}
    for ids in windows:
        for n, v in zip(unique, session.run(unique, _feeds(model, ids))):
            worst[n] = max(worst.get(n, 0.0), outlier_ratio(np.asarray(v)))
    return {n: r for n, r in worst.items() if r > threshold}
