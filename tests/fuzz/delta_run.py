"""Fuzz the delta reader and applier with seeded mutations of valid deltas (tests/fuzz/README.md).

    python tests/fuzz/delta_run.py --count 400 --seed 1      # what CI runs (tests/test_fuzz_delta.py)
    python tests/fuzz/delta_run.py --seconds 3600 --seed 7   # a long run
    python tests/fuzz/delta_run.py --case 123 --seed 1       # replay one case, with a traceback

The claim: whatever bytes a delta holds, `open_delta` and `apply_delta` raise nothing but EdgepackErrors,
write no output when they fail, never change the base, and stay within a memory bound; and an apply that
succeeds writes exactly the new bundle (with a public key: one that verifies with it). Case i of seed K
draws from random.Random(f"{K}:{i}") alone. Mutations: bytes (flips, truncation, overwrites, appends,
header fields), resealed index edits (any value of the parsed index set to an edge value, removed, or
given a sibling, the index hash recomputed), and data edits behind a valid index.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import delta_edit  # noqa: E402
import deltas  # noqa: E402
import rss  # noqa: E402
from fuzz.mutate import INT_EDGES, ODD_VALUES, U64_EDGES  # noqa: E402

from edgepack.runtime import EdgepackError, apply_delta, open_bundle  # noqa: E402


def make_seeds(folder: str) -> list[dict[str, Any]]:
    """Valid deltas between versions of a small MLP: last layer, every layer, a reshaped layer, and a
    signed result."""
    from edgepack.packager.delta import make_delta
    from edgepack.packager.sign import keygen, sign_bundle

    paths, _ = deltas.versions(__import__("pathlib").Path(folder), hidden=(48, 48))
    keys = keygen(os.path.join(folder, "k.key"))
    signed = os.path.join(folder, "signed.edgepack")
    with open(paths["full"], "rb") as src, open(signed, "wb") as dst:
        dst.write(src.read())
    sign_bundle(signed, keys.private_path)
    seeds = []
    for name, new in (("head", paths["head"]), ("full", paths["full"]), ("shape", paths["shape"]),
                      ("signed", signed)):
        out = os.path.join(folder, f"{name}.edgedelta")
        make_delta(paths["v1"], new, out)
        with open(out, "rb") as f, open(new, "rb") as g:
            seeds.append({"name": name, "delta": f.read(), "new": hashlib.sha256(g.read()).hexdigest(),
                          "key": keys.public_path if name == "signed" else None})
    return [dict(s, base=str(paths["v1"])) for s in seeds]


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.extend(_paths(v, prefix + (k,)))
    return out


def _index_edit(data: bytes, rng: random.Random) -> bytes:
    def change(index: dict, section: bytearray) -> None:
        path = rng.choice(_paths(index)[1:])
        parent = index
        for k in path[:-1]:
            parent = parent[k]
        roll = rng.random()
        if roll < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.25 and isinstance(parent, dict):
            parent["x" + str(path[-1])] = 1
        elif roll < 0.7:
            parent[path[-1]] = rng.choice(INT_EDGES)
        else:
            parent[path[-1]] = rng.choice(ODD_VALUES)
    return delta_edit.edit(data, change)


def mutate(seed: dict[str, Any], rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(seed["delta"])
    kind = rng.choice(["flip", "truncate", "overwrite", "append", "header", "index", "index", "index", "data"])
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "overwrite":
        at = rng.randrange(len(data))
        data[at:at + 8] = rng.randbytes(8)
    elif kind == "append":
        data += rng.randbytes(rng.randint(1, 64))
    elif kind == "header":
        at = rng.choice([8, 12, 16, 24])
        width = 4 if at < 16 else 8
        data[at:at + width] = (rng.choice(U64_EDGES) % (1 << (8 * width))).to_bytes(width, "little")
    elif kind == "index":
        return kind, _index_edit(bytes(data), rng)
    else:  # a changed payload byte behind a valid index
        index, section, _ = delta_edit.parts(bytes(data))
        section = bytearray(section)
        if section:
            section[rng.randrange(len(section))] ^= 1 << rng.randrange(8)
        return kind, delta_edit.assemble(index, bytes(section))
    return kind, bytes(data)


def one_case(k: int, i: int, seeds: list[dict[str, Any]], out: str) -> dict[str, Any]:
    rng = random.Random(f"{k}:{i}")
    seed = rng.choice(seeds)
    name, data = mutate(seed, rng)
    update, result = os.path.join(out, "case.edgedelta"), os.path.join(out, "case.edgepack")
    with open(update, "wb") as f:
        f.write(data)
    with open(seed["base"], "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    finding, outcome = None, "applied"
    try:
        apply_delta(seed["base"], update, result, public_key=seed["key"])
        with open(result, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != seed["new"]:
                finding = "an applied mutant wrote a bundle other than the new one"
        if seed["key"]:
            with open_bundle(result, public_key=seed["key"]) as b:
                if b.verify():
                    finding = "an applied mutant of a signed delta does not verify"
        os.unlink(result)
    except EdgepackError as e:
        outcome = type(e).__name__
        if os.path.exists(result) or any(f.endswith(".tmp") for f in os.listdir(out)):
            finding = f"{outcome} left output behind"
    except Exception as e:
        finding = f"{type(e).__module__}.{type(e).__name__}: {str(e)[:300]}\n{traceback.format_exc()}"
        with open(os.path.join(out, f"finding-{k}-{i}.edgedelta"), "wb") as f:
            f.write(data)
    with open(seed["base"], "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != before:
            finding = "the base changed"
    return {"case": i, "seed": seed["name"], "mutation": name, "outcome": outcome, "finding": finding}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--case", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--max-data-mb", type=int, default=2048)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    limit = args.max_data_mb * 2 ** 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    out = args.out or tempfile.mkdtemp(prefix="delta-fuzz.")
    os.makedirs(out, exist_ok=True)
    seeds = make_seeds(tempfile.mkdtemp(prefix="delta-seeds.", dir=out))
    if args.case is not None:
        print(json.dumps(one_case(args.seed, args.case, seeds, out)))
        return 0
    t0, results, i = time.perf_counter(), [], 0
    while (i < args.count) if args.seconds is None else (time.perf_counter() - t0 < args.seconds):
        results.append(one_case(args.seed, i, seeds, out))
        i += 1
    findings = [r for r in results if r["finding"]]
    report = {"cases": len(results), "findings": findings, "peak_rss_mb": round(rss.peak_mb(), 1),
              "mutations": dict(Counter(r["mutation"] for r in results)),
              "outcomes": dict(Counter(r["outcome"] for r in results)), "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
