"""transformers' own logits for a Hugging Face model folder, the reference its ONNX export is checked against,
computed in a child process: torch and transformers take about 400 MB of RSS once imported, which a process
never gives back, and the packager goes on to quantize and write the model after the check. A process that has
imported them already computes the logits itself (a child would only add a second copy)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile

import numpy as np

from edgepack.packager.errors import ExportFailed
from edgepack.runtime.text import clip

from .extras import installed

FEATURE = "importing a Hugging Face model folder"
_CHILD = "import sys; from edgepack.packager.convert.hf_reference import save_logits; save_logits(*sys.argv[1:4])"


def logits(folder: str, ids: np.ndarray) -> np.ndarray:
    """transformers' float32 logits of `ids`, in this process."""
    import torch
    import transformers

    with torch.no_grad():
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        out = model(torch.from_numpy(ids)).logits.numpy().copy()
    del model
    gc.collect()  # the model's modules refer to each other: freed only by a collection
    return out


def save_logits(folder: str, ids_path: str, out_path: str) -> None:
    """The child process's work: logits of the ids saved at ids_path, saved to out_path."""
    np.save(out_path, logits(folder, np.load(ids_path)))


def reference_logits(folder: str, ids: np.ndarray, timeout: float = 3600) -> np.ndarray:
    """Logits [batch, tokens, vocab] of `ids` by transformers (float32), run in a child process; in this one
    where torch and transformers are imported already (a child would then only add a second copy of them)."""
    installed("torch", FEATURE, "llm")
    installed("transformers", FEATURE, "llm")
    if sys.modules.get("torch") is not None and sys.modules.get("transformers") is not None:
        try:
            return logits(folder, ids)
        except Exception as e:  # transformers' own errors: one line, as from the child
            raise _failed(folder, clip(f"{type(e).__name__}: {e}", 300)) from None
    with tempfile.TemporaryDirectory(prefix="edgepack-reference-") as tmp:
        ids_path, out_path = os.path.join(tmp, "ids.npy"), os.path.join(tmp, "logits.npy")
        np.save(ids_path, ids)
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, folder, ids_path, out_path], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ExportFailed(f"{folder}: transformers did not compute the reference logits within "
                               f"{timeout:.0f} s") from None
        if done.returncode != 0 or not os.path.isfile(out_path):
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = clip(lines[-1], 300) if lines else f"exit status {done.returncode}"
            raise _failed(folder, reason)
        return np.load(out_path)


def _failed(folder: str, reason: str) -> ExportFailed:
    return ExportFailed(f"{folder}: transformers could not run the model to check the export: {reason}")
