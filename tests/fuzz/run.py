"""Fuzz the bundle reader and loader with seeded mutations (tests/fuzz/README.md).

    python tests/fuzz/run.py --count 2000 --seed 1          # what CI runs (tests/test_fuzz.py)
    python tests/fuzz/run.py --seconds 3600 --seed 7        # a long run
    python tests/fuzz/run.py --case 1234 --seed 1           # replay one case in this process

Case i of a run with seed K is drawn from random.Random(f"{K}:{i}") alone, so any case replays without
the ones before it. Worker processes (--jobs) take cases i = w, w + jobs, ...; each writes the case it is
running to OUT/wN.edgepack first, so a crash or a hang (no case may take longer than --case-timeout)
leaves the culprit behind. Findings (an exception that is not an EdgepackError, a broken oracle, a
crashed or hung worker, peak RSS over --max-rss-mb) are saved in OUT and make the exit status 1; the
report names the case that set each worker's peak RSS. Workers run with their data size capped
(--max-data-mb): a valid model can ask onnxruntime for any amount of memory at run time.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: bundles, graphs and this package

import rss  # noqa: E402
from fuzz import harness, mutate, seeds as seeds_mod  # noqa: E402


def _limit_memory(mb: int) -> None:
    """A resealed mutant is a valid model that may ask onnxruntime for any amount of memory at run time (a
    Tile repeat of 8388609 asked for 11 GB): cap the process's data (heap and private mappings; unlike the
    address space, this leaves reservations alone) so that such a run fails instead of taking the machine.
    Allocations over the cap fail, and must fail as EdgepackErrors like any other."""
    limit = int(mb) * 2 ** 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _note(out: str, worker: int, what: dict) -> None:
    """Record the case a worker is on, for the driver to report if the worker crashes or hangs."""
    with open(os.path.join(out, f"w{worker}.current"), "w") as f:
        json.dump(what, f)


def one_case(k: int, i: int, seeds: list, out: str, worker: int) -> dict:
    rng = random.Random(f"{k}:{i}")
    seed = rng.choice(seeds)
    _note(out, worker, {"case": i, "seed": seed.name, "mutation": "(mutating)"})
    name, data = mutate.mutate(seed, rng, seeds)
    path = os.path.join(out, f"w{worker}.edgepack")
    with open(path, "wb") as f:
        f.write(data)
    _note(out, worker, {"case": i, "seed": seed.name, "mutation": name})
    t0 = time.perf_counter()
    try:
        outcome, finding = harness.exercise(path, seed), None
    except Exception as e:  # the finding: anything that is not an EdgepackError
        outcome, finding = ["FOREIGN"], f"{type(e).__module__}.{type(e).__name__}: {str(e)[:300]}"
        with open(os.path.join(out, f"finding-{k}-{i}.edgepack"), "wb") as f:
            f.write(data)
        with open(os.path.join(out, f"finding-{k}-{i}.txt"), "w") as f:
            f.write(f"seed {seed.name}, mutation {name}\n{traceback.format_exc()}")
    return {"case": i, "seed": seed.name, "mutation": name, "outcome": outcome, "finding": finding,
            "seconds": time.perf_counter() - t0}


def worker(args: argparse.Namespace) -> None:
    import onnxruntime

    _limit_memory(args.max_data_mb)
    warnings.simplefilter("ignore")
    onnxruntime.set_default_logger_severity(4)  # mutants make it log every oddity they carry
    seeds = seeds_mod.read(args.seeds)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    outcomes, mutations, findings = Counter(), Counter(), []
    slowest, cases, peak = (0.0, -1), 0, (rss.peak_mb(), -1)
    i = args.worker
    while (args.count is None or i < args.count) and (deadline is None or time.monotonic() < deadline):
        faulthandler.dump_traceback_later(args.case_timeout, exit=True)
        r = one_case(args.seed, i, seeds, args.out, args.worker)
        faulthandler.cancel_dump_traceback_later()
        cases += 1
        outcomes[" ".join(r["outcome"])] += 1
        mutations[r["mutation"]] += 1
        slowest = max(slowest, (r["seconds"], i))
        worker_peak = max(rss.peak_mb(), harness.peak_seen_mb)  # the harness resets VmHWM around load()
        if worker_peak > peak[0]:  # the case that raised the high-water mark last is the peak's culprit
            peak = (worker_peak, i)
        if r["finding"]:
            findings.append({k: r[k] for k in ("case", "seed", "mutation", "finding")})
        i += args.jobs
    with open(os.path.join(args.out, f"w{args.worker}.json"), "w") as f:
        json.dump({"cases": cases, "outcomes": outcomes, "mutations": mutations, "findings": findings,
                   "slowest_s": slowest[0], "slowest_case": slowest[1], "peak_rss_mb": peak[0],
                   "peak_case": peak[1]}, f)


def _merge(results: list[dict]) -> dict:
    total: dict = {"cases": 0, "outcomes": Counter(), "mutations": Counter(), "findings": [], "slowest_s": 0.0,
                   "slowest_case": -1, "peak_rss_mb": 0.0, "peak_case": -1}
    for r in results:
        total["cases"] += r["cases"]
        total["outcomes"].update(r["outcomes"])
        total["mutations"].update(r["mutations"])
        total["findings"] += r["findings"]
        if r["slowest_s"] > total["slowest_s"]:
            total["slowest_s"], total["slowest_case"] = r["slowest_s"], r["slowest_case"]
        if r["peak_rss_mb"] > total["peak_rss_mb"]:
            total["peak_rss_mb"], total["peak_case"] = r["peak_rss_mb"], r["peak_case"]
    return total


def drive(args: argparse.Namespace) -> dict:
    """Build the seeds, run the workers, merge what they report."""
    os.makedirs(args.out, exist_ok=True)
    if not args.seeds:
        args.seeds = os.path.join(args.out, "seeds")
        seeds_mod.build(args.seeds)
    t0 = time.monotonic()
    base = [sys.executable, os.path.abspath(__file__), "--seeds", args.seeds, "--out", args.out,
            "--seed", str(args.seed), "--jobs", str(args.jobs), "--case-timeout", str(args.case_timeout),
            "--max-data-mb", str(args.max_data_mb)]
    base += ["--count", str(args.count)] if args.count is not None else []
    base += ["--seconds", str(args.seconds)] if args.seconds else []
    procs = [subprocess.Popen(base + ["--worker", str(w)]) for w in range(args.jobs)]
    results, crashes = [], []
    for w, p in enumerate(procs):
        code = p.wait()
        report = os.path.join(args.out, f"w{w}.json")
        if code == 0 and os.path.exists(report):
            with open(report) as f:
                results.append(json.load(f))
        else:  # a crash or a hang: the case it was running is still in wN.current and wN.edgepack
            with open(os.path.join(args.out, f"w{w}.current")) as f:
                crashes.append({"worker": w, "exit": code, **json.load(f)})
    total = _merge(results)
    total.update(crashes=crashes, seconds=time.monotonic() - t0, seed=args.seed, jobs=args.jobs)
    return total


def ok(total: dict, max_rss_mb: float) -> bool:
    return not total["findings"] and not total["crashes"] and total["peak_rss_mb"] <= max_rss_mb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1, help="run seed: the same seed gives the same cases")
    p.add_argument("--count", type=int, default=None, help="number of cases (default: 2000 unless --seconds)")
    p.add_argument("--seconds", type=float, default=None, help="run for this long instead")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--case-timeout", type=float, default=60.0, help="seconds one case may take (a hang)")
    p.add_argument("--max-rss-mb", type=float, default=1500.0, help="peak RSS a worker may reach (a finding)")
    p.add_argument("--max-data-mb", type=int, default=2048, help="memory a worker may allocate (RLIMIT_DATA)")
    p.add_argument("--out", default=None, help="folder for seeds, findings and reports (default: a temp dir)")
    p.add_argument("--seeds", default=None, help="a folder of seeds built before (default: build them)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--case", type=int, default=None, help="replay one case in this process, with a traceback")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.count is None and not args.seconds:
        args.count = 2000
    if args.worker is not None:
        worker(args)
        return 0
    args.out = args.out or tempfile.mkdtemp(prefix="edgepack-fuzz-")
    if args.case is not None:
        return replay(args)
    total = drive(args)
    if args.json:
        print(json.dumps(total))
    else:
        print(summary(total, args.out))
    return 0 if ok(total, args.max_rss_mb) else 1


def replay(args: argparse.Namespace) -> int:
    os.makedirs(args.out, exist_ok=True)
    _limit_memory(args.max_data_mb)
    if not args.seeds:
        args.seeds = os.path.join(args.out, "seeds")
        seeds_mod.build(args.seeds)
    seeds = seeds_mod.read(args.seeds)
    rng = random.Random(f"{args.seed}:{args.case}")
    seed = rng.choice(seeds)
    name, data = mutate.mutate(seed, rng, seeds)
    path = os.path.join(args.out, f"case-{args.seed}-{args.case}.edgepack")
    with open(path, "wb") as f:
        f.write(data)
    print(f"case {args.case}: seed {seed.name}, mutation {name}, written to {path}")
    t0 = time.perf_counter()
    print(harness.exercise(path, seed), f"{time.perf_counter() - t0:.2f} s")
    return 0


def summary(total: dict, out: str) -> str:
    lines = [f"{total['cases']} mutated bundles in {total['seconds']:.1f} s ({total['jobs']} workers, seed "
             f"{total['seed']}): {len(total['findings'])} foreign exceptions or broken oracles, "
             f"{len(total['crashes'])} crashed or hung workers; peak RSS {total['peak_rss_mb']:.0f} MB per worker "
             f"(case {total['peak_case']}); "
             f"slowest case {total['slowest_s']:.2f} s (case {total['slowest_case']})"]
    lines += [f"  finding: {f}" for f in total["findings"][:20]]
    lines += [f"  crash/hang: {c}" for c in total["crashes"]]
    lines.append("  outcomes (read, load+run[, signed]): " + ", ".join(
        f"{k} {v}" for k, v in Counter(total["outcomes"]).most_common(12)))
    lines.append("  mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(total["mutations"].items())))
    lines.append(f"  reports, seeds and findings in {out}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
