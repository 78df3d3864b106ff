"""An .onnx language model already in the Optimum / onnxruntime-genai KV-cache convention: packaged as any
ONNX model, with the tokenizer files and config.json found beside it carried into report["llm"]."""

from __future__ import annotations

import json
import os
from typing import Any

import onnx

from edgepack.runtime.errors import ModelError


def is_kv_cache_model(model: onnx.ModelProto) -> bool:
    names = {i.name for i in model.graph.input}
    return {"input_ids", "attention_mask"} <= names and any(n.startswith("past_key_values.") for n in names)


def llm_beside(model: onnx.ModelProto, path: str) -> dict[str, Any] | None:
    """report["llm"] for a KV-cache model at `path`, from the files beside it (None for other models)."""
    if not is_kv_cache_model(model):
        return None
    from .from_hf import llm_extras

    folder = os.path.dirname(os.path.abspath(path))
    config: dict[str, Any] = {}
    if os.path.isfile(os.path.join(folder, "config.json")):
        with open(os.path.join(folder, "config.json")) as f:
            try:
                config = json.load(f)
            except (ValueError, RecursionError) as e:
                raise ModelError(f"{folder}: config.json is not JSON ({str(e)[:200]})") from None
    return llm_extras(folder, config)
