"""transformers' own logits for a Hugging Face model folder, the reference its ONNX export is checked against,
computed in a child process: torch and transformers take about 400 MB of RSS once imported, which a process
never gives back, and the packager goes on to quantize and write the model after the check."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from edgepack.packager.errors import ExportFailed
from edgepack.runtime.text import clip

from .extras import installed

FEATURE = "importing a Hugging Face model folder"
_CHILD = r"""
import sys
import numpy as np
import torch
import transformers
folder, ids_path, out_path = sys.argv[1:4]
ids = np.load(ids_path)
with torch.no_grad():
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    np.save(out_path, model(torch.from_numpy(ids)).logits.numpy())
"""


def reference_logits(folder: str, ids: np.ndarray, timeout: float = 3600) -> np.ndarray:
    """Logits [batch, tokens, vocab] of `ids` by transformers (float32), run in a child process."""
    installed("torch", FEATURE, "llm")
    installed("transformers", FEATURE, "llm")
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
            raise ExportFailed(f"{folder}: transformers could not run the model to check the export: {reason}")
        return np.load(out_path)
