"""`edgepack demo`: package the model that ships with edgepack for this host, run it, and report.

The model is a small residual CNN trained on scikit-learn's 8x8 digits (scripts/make_demo_model.py); the
held-out quarter of the data set ships beside it, so the accuracy printed is measured, not remembered.
The int8-static line calibrates on the first 100 held-out samples and measures on the others, so its
accuracy and the fp32 one it is compared with come from samples the calibration never saw.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import onnxruntime as ort

from edgepack.runtime import load
from edgepack.runtime.measure_child import measure_child

from .api import package


def demo_files() -> tuple[str, str]:
    """Paths of the shipped demo model and its held-out samples."""
    data = resources.files("edgepack.packager") / "data"
    return str(data / "digits_cnn.onnx"), str(data / "digits_samples.npz")


@dataclass
class DemoResult:
    target: str
    model_bytes: int
    bundle_bytes: int
    samples: int
    accuracy: float
    baseline_accuracy: float
    bit_identical: bool
    peak_mb: float
    baseline_peak_mb: float
    bundle_path: str | None
    int8_bytes: int = 0
    int8_samples: int = 0
    int8_accuracy: float = 0.0
    int8_baseline_accuracy: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"edgepack demo: residual CNN on scikit-learn's 8x8 digits, packaged for {self.target}",
            f"  bundle     {self.bundle_bytes:,} bytes ({self.bundle_bytes / self.model_bytes:.2f}x the "
            f"{self.model_bytes:,}-byte .onnx)",
            f"  accuracy   {100 * self.accuracy:.2f}% on {self.samples} held-out samples "
            f"(original .onnx: {100 * self.baseline_accuracy:.2f}%)",
            f"  outputs    {'bit-identical to' if self.bit_identical else 'DIFFERENT from'} plain onnxruntime "
            "on the original",
            f"  peak RSS   {self.peak_mb:.1f} MB loading and running the bundle in a fresh process "
            f"(plain onnxruntime on the .onnx: {self.baseline_peak_mb:.1f} MB, "
            f"{self.peak_mb / self.baseline_peak_mb:.2f}x)",
            f"  int8       {self.int8_bytes:,} bytes ({self.int8_bytes / self.model_bytes:.2f}x the .onnx) with "
            f"--quantize int8-static: accuracy {100 * self.int8_accuracy:.2f}% on the {self.int8_samples} held-out "
            f"samples calibration did not use (fp32: {100 * self.int8_baseline_accuracy:.2f}%, "
            f"{100 * (self.int8_accuracy - self.int8_baseline_accuracy):+.2f} pt)",
            *([f"  written    {self.bundle_path}"] if self.bundle_path else []),
        ]


def run_demo(output: str | os.PathLike | None = None, target: Any = None) -> DemoResult:
    model_path, samples_path = demo_files()
    samples = np.load(samples_path)
    x, labels = samples["x"], samples["labels"]
    with tempfile.TemporaryDirectory(prefix="edgepack-demo-") as tmp:
        bundle = os.fspath(output) if output else os.path.join(tmp, "digits_cnn.edgepack")
        result = package(model_path, output=bundle, target=target)
        logits = load(bundle).run({"x": x})["logits"]
        reference = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        feeds = os.path.join(tmp, "feeds.npz")
        np.savez(feeds, x=x)
        ours = measure_child("bundle", bundle, feeds)
        base = measure_child("onnx", model_path, feeds)
        int8 = _int8(model_path, x, labels, reference, target, tmp)
        return DemoResult(
            target=result.target, model_bytes=os.path.getsize(model_path), bundle_bytes=result.bundle_bytes,
            samples=len(labels), accuracy=float((logits.argmax(1) == labels).mean()),
            baseline_accuracy=float((reference.argmax(1) == labels).mean()),
            bit_identical=bool(np.array_equal(logits, reference)), peak_mb=ours["peak_mb"],
            baseline_peak_mb=base["peak_mb"], bundle_path=os.fspath(output) if output else None, **int8)


CALIBRATION = 100


def _int8(model_path: str, x: np.ndarray, labels: np.ndarray, reference: np.ndarray, target: Any,
          tmp: str) -> dict[str, Any]:
    """Package int8-static, calibrated on the first CALIBRATION samples, and measure it on the rest."""
    calibration, bundle = os.path.join(tmp, "calibration.npz"), os.path.join(tmp, "int8.edgepack")
    np.savez(calibration, x=x[:CALIBRATION])
    result = package(model_path, output=bundle, target=target, quantize="int8-static", calibration=calibration)
    held, truth = x[CALIBRATION:], labels[CALIBRATION:]
    logits = load(bundle).run({"x": held})["logits"]
    return {"int8_bytes": result.bundle_bytes, "int8_samples": len(truth),
            "int8_accuracy": float((logits.argmax(1) == truth).mean()),
            "int8_baseline_accuracy": float((reference[CALIBRATION:].argmax(1) == truth).mean())}
