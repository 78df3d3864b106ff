"""`measure` for a language-model bundle: in fresh child processes, load time, time to first token and
tokens per second at a given prompt and generation length, and peak RSS (VmHWM) with the KV cache."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from . import errors
from .errors import SessionError
from .measure_child import _rebuild
from .reader import open_bundle
from .signature import public_key_bytes
from .text import counted

_CHILD = r"""
import json, sys, time
path, prompt, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = json.loads(sys.argv[4])
def hwm():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))
def fail(e):  # the parent raises it again, as the same type where it is edgepack's
    print("EDGEPACK-ERROR", json.dumps({"type": type(e).__name__, "message": str(e)}), flush=True)
    sys.exit(1)
from edgepack.runtime import load
t0 = time.perf_counter()
try:
    key = bytes.fromhex(cfg["public_key"]) if cfg["public_key"] else None
    s = load(path, target=cfg["target"], force=cfg["force"], lean=cfg["lean"], public_key=key)
except Exception as e:
    fail(e)
load_s = time.perf_counter() - t0
loaded = hwm()
try:
    vocab = next((o.shape[-1] for o in s.outputs if o.name == "logits" and o.shape), None)
    ids = [(7 * i + 3) % (vocab if isinstance(vocab, int) and vocab > 0 else 100) for i in range(prompt)]
    g = s.generate(ids, n)
except Exception as e:
    fail(e)
print("EDGEPACK-MEASURE", json.dumps({"load_s": load_s, "time_to_first_token_s": g.time_to_first_token_s,
      "tokens_per_s": g.tokens_per_s, "generated": len(g.token_ids), "peak_load_mb": loaded, "peak_mb": hwm()}))
"""


def is_language_model(path: str) -> bool:
    with open_bundle(path) as b:
        return "llm" in b.manifest.report


def measure_generation(path: str, prompt_tokens: int = 32, new_tokens: int = 64, repeat: int = 1, *,
                       target: str | None = None, force: bool = False, lean: bool | None = None,
                       public_key: str | os.PathLike | bytes | None = None, timeout: float = 3600
                       ) -> dict[str, Any]:
    """Medians over `repeat` fresh processes, each loading the bundle and generating greedily. target, force,
    lean, public_key: as for load(); timeout: seconds each process may take (SessionError after)."""
    key = public_key_bytes(public_key) if public_key is not None else None  # a bad key fails here, once
    cfg = json.dumps({"target": target, "force": force, "lean": lean, "public_key": key.hex() if key else None})
    runs = []
    for _ in range(repeat):
        try:
            child = subprocess.run([sys.executable, "-c", _CHILD, path, str(prompt_tokens), str(new_tokens), cfg],
                                   capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SessionError(f"{path}: the measuring process took longer than {timeout:.0f} s and was "
                               "stopped") from None
        tagged = dict(line.partition(" ")[::2] for line in child.stdout.splitlines()
                      if line.startswith("EDGEPACK-"))
        if "EDGEPACK-ERROR" in tagged:
            error = json.loads(tagged["EDGEPACK-ERROR"])
            cls = getattr(errors, error["type"], None)
            if isinstance(cls, type) and issubclass(cls, errors.EdgepackError):
                raise _rebuild(cls, error["message"])
            raise SessionError(f"{path}: the measuring process failed: {error['type']}: {error['message']}")
        if child.returncode != 0 or "EDGEPACK-MEASURE" not in tagged:
            lines = [line for line in child.stderr.splitlines() if line.strip()]
            raise SessionError(f"{path}: the measuring process failed: {lines[-1] if lines else child.returncode}")
        runs.append(json.loads(tagged["EDGEPACK-MEASURE"]))
    keys = ("load_s", "time_to_first_token_s", "tokens_per_s", "peak_load_mb", "peak_mb")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out.update(path=path, prompt_tokens=prompt_tokens, new_tokens=new_tokens, generated=runs[0]["generated"],
               processes=repeat)
    return out


def lines(report: dict[str, Any]) -> list[str]:
    return [f"{report['path']}: language model, prompt {report['prompt_tokens']} tokens, "
            f"{report['generated']} generated "
            f"(median of {counted(report['processes'], 'fresh process', 'fresh processes')})",
            f"  load {report['load_s'] * 1000:.0f} ms, first token {report['time_to_first_token_s'] * 1000:.1f} ms, "
            f"{report['tokens_per_s']:.1f} tokens/s",
            f"  peak RSS {report['peak_mb']:.0f} MB with the KV cache ({report['peak_load_mb']:.0f} MB once loaded)"]
