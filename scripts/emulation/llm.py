"""The language-model part of scripts/arm64-check: an int4 bundle of a Hugging Face causal LM generates the
same greedy tokens under aarch64 emulation as on x86.

    python llm.py prepare WORK FOLDER TARGET   # x86: WORK/llm/int4.edgepack, prompt.json, x86.json
    python llm.py run WORK                     # aarch64, runtime only: WORK/llm/arm.json
    python llm.py compare WORK                 # x86: one line; exit 1 when the tokens differ

prepare packages FOLDER with the CLI, as a user does (`edgepack package FOLDER --quantize int4-weight
--target TARGET`: GPTQ, blocks of 32, MatMulNBits with accuracy_level 4, i.e. int8 compute, whose kernels
differ between x86 and ARM), tokenizes the prompt on x86 (the device has no `tokenizers` package: token ids
work without it) and generates greedily there. run generates from the same token ids with the runtime alone,
and also records the prompt's last logits, so that compare can say how far apart the two machines' kernels
are even when the tokens agree. The tokens must be equal: greedy decoding of the same weights.
"""

from __future__ import annotations

import json
import os
import sys
import time

PROMPT = "Return a new list containing"
NEW_TOKENS = 32


def _paths(work: str) -> dict[str, str]:
    folder = os.path.join(work, "llm")
    return {name: os.path.join(folder, file) for name, file in [
        ("folder", ""), ("bundle", "int4.edgepack"), ("prompt", "prompt.json"), ("x86", "x86.json"),
        ("arm", "arm.json"), ("x86_logits", "x86.logits.npy"), ("arm_logits", "arm.logits.npy")]}


def _generate(bundle: str, ids: list[int], logits_path: str, force: bool) -> dict:
    """Greedy generation from `ids`, and the prompt's last logits (one prefill through the KV cache)."""
    import numpy as np

    from edgepack.runtime import load
    from edgepack.runtime.generate import KVRunner

    t0 = time.perf_counter()
    session = load(bundle, force=True) if force else load(bundle)
    t1 = time.perf_counter()
    g = session.generate(ids, NEW_TOKENS)
    runner = KVRunner(session, len(ids) + 1, len(ids))
    np.save(logits_path, np.array(runner.step(ids)[-1], dtype=np.float32))
    return {"token_ids": g.token_ids, "stop_reason": g.stop_reason, "load_s": t1 - t0,
            "generate_s": g.timings.get("total_s", 0.0), "profile": session.profile.name}


def prepare(work: str, folder: str, target: str) -> None:
    from edgepack.cli import main as edgepack_cli
    from edgepack.runtime import load
    from edgepack.runtime.generate import token_ids_of

    p = _paths(work)
    os.makedirs(p["folder"], exist_ok=True)
    args = ["package", folder, "-o", p["bundle"], "--quantize", "int4-weight", "--target", target]
    print("x86: edgepack " + " ".join(args))
    try:
        edgepack_cli(args)
    except SystemExit as e:
        if e.code not in (0, None):
            raise SystemExit(f"edgepack package {folder} --quantize int4-weight failed (exit {e.code})") from None
    session = load(p["bundle"], force=True)
    quantization = session.manifest.report.get("quantization", {})
    ids = token_ids_of(session, PROMPT)
    with open(p["prompt"], "w") as f:
        json.dump({"prompt": PROMPT, "token_ids": ids, "bundle_bytes": os.path.getsize(p["bundle"]),
                   "method": quantization.get("method"),
                   "bits_per_weight": quantization.get("bits_per_weight")}, f)
    x86 = _generate(p["bundle"], ids, p["x86_logits"], force=True)
    with open(p["x86"], "w") as f:
        json.dump(x86, f)
    print(f"x86: {len(x86['token_ids'])} tokens from {len(ids)} prompt tokens ({x86['stop_reason']})")


def run(work: str) -> None:
    """Under emulation: the device's runtime only, the bundle's own profile (no force)."""
    p = _paths(work)
    with open(p["prompt"]) as f:
        ids = json.load(f)["token_ids"]
    arm = _generate(p["bundle"], ids, p["arm_logits"], force=False)
    with open(p["arm"], "w") as f:
        json.dump(arm, f)
    print(f"int4 language model: loaded for {arm['profile']} in {arm['load_s']:.1f}s, {len(arm['token_ids'])} "
          f"tokens generated in {arm['generate_s']:.1f}s (emulated: times say nothing of a real board)")


def compare(work: str) -> int:
    import numpy as np

    p = _paths(work)
    with open(p["prompt"]) as f:
        prompt = json.load(f)
    with open(p["x86"]) as f:
        x86 = json.load(f)
    with open(p["arm"]) as f:
        arm = json.load(f)
    a, b = np.load(p["arm_logits"]), np.load(p["x86_logits"])
    relative = float(np.max(np.abs(a.astype(np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-30))
    same = next((i for i, (s, t) in enumerate(zip(arm["token_ids"], x86["token_ids"])) if s != t),
                min(len(arm["token_ids"]), len(x86["token_ids"])))
    ok = arm["token_ids"] == x86["token_ids"] and len(x86["token_ids"]) > 0
    line = (f"int4 language model ({prompt['method']}, {prompt['bits_per_weight']} bits/weight, "
            f"{prompt['bundle_bytes']:,} B): greedy tokens equal for {same}/{len(x86['token_ids'])} "
            f"(aarch64 {len(arm['token_ids'])}), prompt logits max|arm-x86|/max|x86| {relative:.1e}: "
            + ("ok" if ok else "FAILED"))
    print(line)
    if not ok:
        print(f"    x86:     {x86['token_ids']}\n    aarch64: {arm['token_ids']}")
    with open(os.path.join(work, "llm_figures.txt"), "w") as f:
        f.write(f"int4 LLM {same}/{len(x86['token_ids'])} tokens equal (logits {relative:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"] and len(sys.argv) == 5:
        prepare(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1:2] == ["run"] and len(sys.argv) == 3:
        run(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 3:
        sys.exit(compare(sys.argv[2]))
    else:
        sys.exit(__doc__.split("\n\n")[1])
