"""What the benchmark scripts share: the models to measure, and alternating measurements with medians.

Every figure comes from a fresh child process (edgepack.runtime.measure_child.measure_child). The variants of one
model are measured in turn, round after round, so that a slow spell on a shared machine hits all of them
alike; each printed figure is the median over the rounds, and each ratio the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any
from collections.abc import Callable

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=".onnx files (default: the models the test suite builds)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per model (default 5)")
    ap.add_argument("--only", default=None, help="comma-separated names of built-in models to keep")
    ap.add_argument("--target", default=None, help="package for this target profile (default: this host's)")
    return ap


def convnet(seed: int = 0) -> tuple[Any, dict]:
    """A small-weight, large-activation CNN on a 224x224 image (6 MB activations per layer): the kind of model
    where the memory arena and memory pattern matter more than the weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, x, c = [], [], "x", 3
    for i, (out, stride) in enumerate(((32, 1), (32, 1), (64, 2), (64, 1), (128, 2))):
        w = (rng.standard_normal((out, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[stride] * 2),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x, c = f"r{i}", out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["y"]))
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])
    graph = helper.make_graph(nodes, "convnet", [x_info],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"x": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def builtin_models(folder: str, only: str | None = None) -> list[tuple[str, str, str | None]]:
    """(label, .onnx path, feeds .npz) for the 50 MB MLP, the demo's digits CNN, a large-activation CNN and
    tests/graphs.py's graphs."""
    import graphs
    from edgepack.packager.demo import demo_files

    builders: dict[str, Callable[[], tuple[Any, dict]]] = {"mlp50": lambda: graphs.mlp_bytes(50), "convnet": convnet}
    builders.update(graphs.ALL)
    out = []
    for name, build in builders.items():
        model, feeds = build()
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(model, path)
        np.savez(os.path.join(folder, f"{name}_feeds.npz"), **feeds)
        out.append((name, path, os.path.join(folder, f"{name}_feeds.npz")))
    demo, samples = demo_files()
    np.savez(os.path.join(folder, "digits_feeds.npz"), x=np.load(samples)["x"][:1])
    out.insert(1, ("digits_cnn", demo, os.path.join(folder, "digits_feeds.npz")))
    keep = set(only.split(",")) if only else None
    return [m for m in out if keep is None or m[0] in keep]


def models(args: argparse.Namespace, folder: str) -> list[tuple[str, str, str | None]]:
    if args.models:
        return [(os.path.basename(m), m, None) for m in args.models]
    return builtin_models(folder, args.only)


def package(path: str, folder: str, target: str | None) -> str:
    import edgepack

    bundle = os.path.join(folder, os.path.basename(path) + ".edgepack")
    edgepack.package(path, output=bundle, target=target)
    return bundle


def rounds(variants: dict[str, Callable[[], dict[str, Any]]], n: int) -> dict[str, list[dict[str, Any]]]:
    """Measure each variant once per round, in turn, for n rounds."""
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    for _ in range(n):
        for name, fn in variants.items():
            results[name].append(fn())
    return results


def median(results: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(key(r) for r in results)


def ratio(a: list[dict[str, Any]], b: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    """Median over the rounds of a/b, each round's pair measured back to back."""
    return statistics.median(key(x) / key(y) for x, y in zip(a, b))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def table(header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
