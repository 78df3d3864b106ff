"""What a trial costs on this machine: peak memory and latency of its bundle, in a fresh child process
(edgepack.runtime.measure_child), fed the first eval sample. Timings change from run to run, so they decide
between recipes but stay out of the bundle's manifest."""

from __future__ import annotations

import os
import statistics

import numpy as np

from edgepack.runtime.measure_child import measure_child

from ..datasets import Samples

RUNS = 30


def feeds_file(samples: Samples, folder: str) -> str:
    """The first eval sample as an .npz of feeds, for the child process."""
    path = os.path.join(folder, "measure_feeds.npz")
    if not os.path.exists(path):
        # keyed by the model's input names; numpy's stub also matches **kwds against allow_pickle: bool
        np.savez(path, **samples.feeds[0])  # type: ignore[arg-type]
    return path


def measure(bundle: str, feeds: str, runs: int = RUNS) -> dict[str, float]:
    """{"peak_mb": peak RSS of the process, "p50_ms": median latency of `runs` runs after the first}."""
    child = measure_child("bundle", bundle, feeds, runs, force=True)
    latencies = child["latencies_s"] or [child["first_run_s"]]
    return {"peak_mb": float(child["peak_mb"]), "p50_ms": 1000 * statistics.median(latencies)}
