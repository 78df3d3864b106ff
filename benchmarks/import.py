"""Importing from PyTorch and scikit-learn: for each model of the issue's acceptance list, the time to
package it (export, check, encode), the bundle's size against the source, the conversion check's measured
difference, and the bundle's outputs on held-out data against the source model's own.

    python benchmarks/import.py

Models are built here (digits and iris from scikit-learn, a CNN trained for seconds); nothing is downloaded.
Times include converter imports on the first model of each kind, and these machines are noisy.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def models(folder: str):
    """(name, model or path, example_inputs, held-out feeds, source outputs on them by ONNX output name)."""
    import torch
    from sklearn.datasets import load_digits, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from torch_models import TinyTransformer, train_digits_cnn

    Xd, yd = load_digits(return_X_y=True)
    images = torch.tensor(Xd, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    cnn = train_digits_cnn(images[:1500], torch.tensor(yd[:1500])).eval()
    test = images[1500:]
    with torch.no_grad():
        yield "torch digits CNN", cnn, (test[:4],), {"image": test.numpy()}, {"output": cnn(test).numpy()}
        torch.manual_seed(1)
        tr = TinyTransformer().eval()
        ids = torch.randint(0, 50, (64, 16))
        yield "torch tiny transformer", tr, (ids[:2],), {"ids": ids.numpy()}, {"output": tr(ids).numpy()}
        program = torch.export.export(cnn, (test[:4],), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, os.path.join(folder, "cnn.pt2"))
        yield "torch .pt2 (digits CNN)", os.path.join(folder, "cnn.pt2"), None, {"image": test.numpy()}, \
            {"output": cnn(test).numpy()}
    Xi, yi = load_iris(return_X_y=True)
    Xi = Xi.astype(np.float32)
    Xd = Xd.astype(np.float32) / 16
    for name, est, X, Xt in (
            ("sklearn RandomForest (iris)", RandomForestClassifier(50, random_state=0).fit(Xi[::2], yi[::2]),
             Xi[::2], Xi[1::2]),
            ("sklearn Scaler+LogReg (iris)",
             make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(Xi[::2], yi[::2]),
             Xi[::2], Xi[1::2]),
            ("sklearn MLP (digits)", MLPClassifier((64,), max_iter=300, random_state=0).fit(Xd[:1500], yd[:1500]),
             Xd[:1500], Xd[1500:])):
        yield name, est, X[:32], {"X": Xt}, {"label": est.predict(Xt), "probabilities": est.predict_proba(Xt)}


def main() -> None:
    import warnings

    import edgepack
    from edgepack.runtime import load

    warnings.simplefilter("ignore")
    print(f"{'model':<30} {'source B':>9} {'bundle B':>9} {'ratio':>6} {'package s':>9} {'check max|d|':>12} "
          f"{'held-out max|d|':>15} {'same class':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for name, model, example, feeds, expected in models(folder):
            out = os.path.join(folder, "m.edgepack")
            t = time.perf_counter()
            result = edgepack.package(model, output=out, example_inputs=example)
            seconds = time.perf_counter() - t
            got = load(out).run(feeds)
            floats = [k for k, v in expected.items() if np.asarray(v).dtype.kind == "f"]
            diff = max(float(np.abs(got[k] - expected[k]).max()) for k in floats)
            if "label" in expected:  # classes: scikit-learn's labels; torch: the argmax of its logits
                agree = np.mean(got["label"] == expected["label"])
            else:
                agree = np.mean(got["output"].argmax(-1) == expected["output"].argmax(-1))
            check = result.report["import"]["check"]["max_abs_diff"]
            print(f"{name:<30} {result.source_bytes:>9,} {result.bundle_bytes:>9,} {result.ratio:>6.3f} "
                  f"{seconds:>9.1f} {check:>12.2e} {diff:>15.2e} {agree:>10.1%}")


if __name__ == "__main__":
    main()
