"""A Hugging Face causal language model folder (config.json, *.safetensors, tokenizer.json, optional
generation_config.json) to an ONNX graph with a KV cache (llama_graph), checked against transformers' logits.

Supported: the Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM; SmolLM is Llama):
RoPE without scaling, grouped-query attention, RMSNorm, SiLU MLP, tied or untied embeddings. The tokenizer
files and the generation settings travel into the bundle's report (report["llm"]), where the runtime reads
them.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from edgepack.runtime.errors import ModelError

from .check import compare, onnx_session, run_session
from .hf_reference import reference_logits
from .llama_graph import LlamaShape, build

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def is_hf_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def read_config(folder: str) -> tuple[dict[str, Any], LlamaShape]:
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in ARCHITECTURES:
        raise ModelError(f"{folder}: architecture {arch!r} is not supported; edgepack imports "
                         f"{', '.join(ARCHITECTURES)} (or export the model to ONNX with a KV cache yourself)")
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise ModelError(f"{folder}: rope_scaling {scaling.get('rope_type', scaling.get('type'))!r} is not "
                         "supported yet; only unscaled rotary embeddings are")
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    shape = LlamaShape(
        vocab=int(config["vocab_size"]), hidden=hidden, layers=int(config["num_hidden_layers"]), heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads), eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        max_positions=int(config.get("max_position_embeddings", 2048)),
        tied=bool(config.get("tie_word_embeddings", False)),
        attention_bias=bool(config.get("attention_bias", arch == "Qwen2ForCausalLM")),
        mlp_bias=bool(config.get("mlp_bias", False)))
    if config.get("hidden_act", "silu") != "silu":
        raise ModelError(f"{folder}: hidden_act {config.get('hidden_act')!r} is not supported (only silu)")
    return config, shape


class SafeTensors:
    """Tensors of *.safetensors files read with numpy (the format is a JSON header and raw little-endian
    data), one at a time, memory-mapped."""

    def __init__(self, files: list[str]):
        self.index: dict[str, tuple[str, dict[str, Any], int]] = {}
        for path in files:
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
            for name, info in header.items():
                if name != "__metadata__":
                    self.index[name] = (path, info, 8 + n)

    def get(self, name: str) -> np.ndarray:
        if name not in self.index:
            raise ModelError(f"tensor {name!r} is missing from the model's safetensors files")
        path, info, base = self.index[name]
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ModelError(f"tensor {name!r} has dtype {info['dtype']}, which edgepack does not import")
        start, end = info["data_offsets"]
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=base + start, shape=(end - start,))
        data = raw.view(dtype).reshape(info["shape"])
        if info["dtype"] == "BF16":
            return (data.astype(np.uint32) << 16).view(np.float32)
        return data.astype(np.float32)


def llm_extras(folder: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the runtime needs beyond the graph: the tokenizer files (as text) and generation settings."""
    tokenizer = {}
    for name in TOKENIZER_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                tokenizer[name] = f.read()
    generation: dict[str, Any] = {}
    path = os.path.join(folder, "generation_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            generation = json.load(f)
    eos = generation.get("eos_token_id", config.get("eos_token_id"))
    return {"architecture": (config.get("architectures") or ["?"])[0],
            "context_length": int(config.get("max_position_embeddings", 2048)),
            "eos_token_ids": [int(e) for e in (eos if isinstance(eos, list) else [eos] if eos is not None else [])],
            "bos_token_id": generation.get("bos_token_id", config.get("bos_token_id")),
            "tokenizer": tokenizer}


@dataclass
class HFImport:
    """What from_hf made: the checked graph, the files it came from (hashed for provenance by source.py), the
    import options and report["llm"]."""

    model: Any
    files: list[str]
    options: dict[str, Any]
    llm: dict[str, Any]


def from_hf(folder: str, rtol: float | None = None, atol: float | None = None) -> HFImport:
    """Build, check and return the graph of the model in `folder`."""
    config, shape = read_config(folder)
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise ModelError(f"{folder}: no *.safetensors file; save the model with safe_serialization=True")
    tensors = SafeTensors(files)
    ids = np.random.default_rng(0).integers(0, shape.vocab, (1, 8)).astype(np.int64)
    # before the graph exists: transformers' child process then runs beside this process's smallest footprint
    expected = reference_logits(folder, ids)
    model = build(shape, tensors.get, name=os.path.basename(os.path.normpath(folder)))
    # logits span tens of units; float32 sums over the hidden size differ from transformers' by ~1e-5 near 0
    check = _check(folder, model, shape, ids, expected, rtol if rtol is not None else 1e-3,
                   atol if atol is not None else 1e-4)
    options = {"exporter": "edgepack.llama_graph", "opset": model.opset_import[0].version, "check": check}
    return HFImport(model, [os.path.join(folder, "config.json"), *files], options, llm_extras(folder, config))


def _check(folder: str, model: Any, shape: LlamaShape, ids: np.ndarray, expected: np.ndarray, rtol: float,
           atol: float) -> dict[str, Any]:
    """The graph's logits on the first 7 of `ids`, then the last one through the cache, against transformers'
    logits of all of them (`expected`): they must agree within tolerance."""
    empty = np.zeros((1, shape.kv_heads, 0, shape.head_dim), np.float32)
    feeds: dict[str, np.ndarray] = {"input_ids": ids[:, :7], "attention_mask": np.ones((1, 7), np.int64),
                                    "position_ids": np.arange(7, dtype=np.int64)[None]}
    for i in range(shape.layers):
        feeds[f"past_key_values.{i}.key"] = feeds[f"past_key_values.{i}.value"] = empty
    what = "the exported language model"
    session = onnx_session(model, what, lean=True)  # one session for both steps, holding the weights once
    first = run_session(session, feeds, what)
    step: dict[str, np.ndarray] = {"input_ids": ids[:, 7:], "attention_mask": np.ones((1, 8), np.int64),
                                   "position_ids": np.array([[7]], np.int64)}
    for i in range(shape.layers):
        for kind in ("key", "value"):
            step[f"past_key_values.{i}.{kind}"] = first[f"present.{i}.{kind}"]
    second = run_session(session, step, f"{what} (one step through the KV cache)")
    del session
    got = {"logits": np.concatenate([first["logits"], second["logits"]], axis=1)}
    result = compare(f"{folder} (against transformers)", got, {"logits": expected}, rtol, atol)
    return {**result, "samples": 1, "tokens": int(ids.shape[1])}
