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
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from edgepack.runtime.errors import ModelError, NotARegularFile
from edgepack.runtime.regular import open_regular
from edgepack.runtime.text import clip

from .check import compare, onnx_session, run_session
from .hf_reference import reference_logits
from .llama_graph import LlamaShape, build

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own bound on its JSON header
# What a value of config.json or a safetensors header that is not of the expected type or range raises when
# read: a missing key, int("x"), int(1e999), None.get, a header that is not an object.
_READ_ERRORS = (KeyError, TypeError, ValueError, OverflowError, AttributeError, RecursionError)


def _why(e: BaseException) -> str:
    """What a value of the wrong type or range raised, on one line."""
    return f"{type(e).__name__}: {clip(e, 200)}"


def is_hf_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def read_config(folder: str) -> tuple[dict[str, Any], LlamaShape]:
    """config.json's settings, each checked for type and range (ModelError otherwise)."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        return _read_config(folder, config)
    except _READ_ERRORS as e:
        raise ModelError(f"{folder}: config.json is not a usable model configuration ({_why(e)})") from None


def _read_config(folder: str, config: dict[str, Any]) -> tuple[dict[str, Any], LlamaShape]:
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
    if heads < 1:  # before hidden // heads
        raise ModelError(f"{folder}: config.json's num_attention_heads is {heads}; it must be at least 1")
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
    dims = {"vocab_size": shape.vocab, "hidden_size": shape.hidden, "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads, "head_dim": shape.head_dim}
    bad = next((k for k, v in dims.items() if v < 1), None)
    if bad is not None:
        raise ModelError(f"{folder}: config.json's {bad} is {dims[bad]}; it must be at least 1")
    if shape.heads % shape.kv_heads or shape.head_dim % 2:
        raise ModelError(f"{folder}: config.json's num_attention_heads ({shape.heads}) must be a multiple of "
                         f"num_key_value_heads ({shape.kv_heads}), and head_dim ({shape.head_dim}) even")
    return config, shape


def implied_weights(shape: LlamaShape) -> int:
    """How many weights a model of `shape` has at least (embeddings, attention, norms; not the MLP, whose
    size config.json gives separately): its safetensors files hold at least 2 bytes for each."""
    attention = shape.hidden * shape.head_dim * (2 * shape.heads + 2 * shape.kv_heads) + 2 * shape.hidden
    return shape.vocab * shape.hidden * (1 if shape.tied else 2) + shape.layers * attention + shape.hidden


class SafeTensors:
    """Tensors of *.safetensors files read with numpy (the format is a JSON header and raw little-endian
    data), one at a time, memory-mapped."""

    def __init__(self, files: list[str]):
        self.index: dict[str, tuple[str, dict[str, Any], int]] = {}
        self.total_bytes = 0
        for path in files:
            try:
                fd = open_regular(path)
            except NotARegularFile as e:
                raise ModelError(f"{path}: not a safetensors file: it is {e.what}") from None
            with os.fdopen(fd, "rb") as f:
                size = os.fstat(fd).st_size
                head = f.read(8)
                n = int.from_bytes(head, "little")
                if len(head) < 8 or not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                    raise ModelError(f"{path}: not a safetensors file: its header says {n} bytes, but the "
                                     f"file has {size}")
                try:
                    header = json.loads(f.read(n))
                    for name, info in header.items():
                        if name != "__metadata__":
                            self.index[name] = (path, _entry(path, name, info, size - 8 - n), 8 + n)
                except _READ_ERRORS as e:
                    raise ModelError(f"{path}: not a valid safetensors file ({_why(e)})") from None
            self.total_bytes += size

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


def _entry(path: str, name: str, info: dict[str, Any], data_bytes: int) -> dict[str, Any]:
    """A header entry whose offsets lie in the file's data and whose shape and dtype fill them exactly."""
    dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
    bad = f"{path}: not a valid safetensors file: tensor {name!r}"
    if not isinstance(shape, list) or any(type(d) is not int or d < 0 for d in [*shape, start, end]):
        raise ModelError(f"{bad}: shape and data_offsets must be lists of integers >= 0")
    if not start <= end <= data_bytes:
        raise ModelError(f"{bad}: data_offsets [{start}, {end}] are outside its {data_bytes} bytes of data")
    if dtype in _DTYPES and math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize != end - start:
        raise ModelError(f"{bad}: {dtype}{shape} does not take the {end - start} bytes it is given")
    return info


def llm_extras(folder: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the runtime needs beyond the graph: the tokenizer files (as text) and generation settings."""
    try:
        return _llm_extras(folder, config)
    except _READ_ERRORS as e:
        raise ModelError(f"{folder}: config.json or generation_config.json has settings edgepack cannot read "
                         f"({_why(e)})") from None


def _llm_extras(folder: str, config: dict[str, Any]) -> dict[str, Any]:
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
    if implied_weights(shape) * 2 > tensors.total_bytes:  # before build() allocates anything from config.json
        raise ModelError(f"{folder}: config.json describes a model of at least {implied_weights(shape)} weights, "
                         f"more than its safetensors files ({tensors.total_bytes} bytes) can hold")
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
