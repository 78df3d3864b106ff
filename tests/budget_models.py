"""A model that plain static int8 breaks, for the budget search's tests: trained on scikit-learn's digits in
about a second, built once per test session.

`wide_range_mlp`: the 64 pixels -> Linear(64, 256) -> ReLU, concatenated with a raw side feature (the image's total
ink in hundredths, 1,156 to 2,544 on the test split) and read by a Linear(257, 10) head. Models that mix
learned features with raw counts or sizes look like this (a file-type classifier's byte histogram beside the
file size). The ReLU features span 0 to 3.4; in the concatenated tensor, one int8 scale per tensor must also
cover the ink (a step of about 10), so static int8 over every op type rounds the learned features to zero and
the classifier falls to chance, while keeping that one tensor in float (the Concat and the head reading it)
restores it.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings

import numpy as np

from quant_models import _CACHE


@functools.cache
def wide_range_mlp() -> dict:
    import torch
    from torch import nn

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from make_demo_model import train

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 256)
            self.head = nn.Linear(257, 10)

        def forward(self, x):
            x = x.flatten(1)
            ink = x.sum(dim=1, keepdim=True) * 100.0
            return self.head(torch.cat([torch.relu(self.fc1(x)), ink], dim=1))

    torch.manual_seed(0)
    net = Net()
    accuracy, (xtr, xte, ytr, yte) = train(net, epochs=20, lr=3e-3)
    folder = os.path.join(_CACHE, "wide_range")
    os.makedirs(folder)
    path = os.path.join(folder, "wide_range.onnx")
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.from_numpy(xte[:1]),), path, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    np.savez(os.path.join(folder, "calib.npz"), x=xtr[:200])
    np.savez(os.path.join(folder, "test.npz"), x=xte, labels=yte)
    np.savez(os.path.join(folder, "test_unlabelled.npz"), x=xte)
    return {"model": path, "calibration": os.path.join(folder, "calib.npz"), "eval": os.path.join(folder, "test.npz"),
            "eval_unlabelled": os.path.join(folder, "test_unlabelled.npz"), "torch_accuracy": accuracy}
