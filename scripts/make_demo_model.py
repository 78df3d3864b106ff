"""Train the demo model that ships in packager/data/ (run once; its outputs are committed).

A small residual CNN on scikit-learn's 8x8 digits: 2 conv layers, BatchNorm, a residual block, a linear
head. Writes digits_cnn.onnx (opset 17, dynamic batch) and digits_samples.npz (the held-out quarter of the
data set: x [N,1,8,8] float32, labels [N] int64). Needs the dev extra (torch, scikit-learn).

    python scripts/make_demo_model.py packager/data
"""

import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32))
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 10))

    def forward(self, x):
        h = self.stem(x)
        return self.head(torch.relu(h + self.res(h)))


def train(net: nn.Module, epochs: int = 30, lr: float = 2e-3):
    """Train `net` on the digits' training three quarters; returns (accuracy on the held-out quarter, (xtr, xte,
    ytr, yte)). The tests train their own CNNs with it."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr).long()
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    return acc, (xtr, xte, ytr, yte)


def main(out: str) -> None:
    torch.manual_seed(0)
    net = DigitsCNN()
    acc, (_, xte, _, yte) = train(net)
    print(f"test accuracy {acc:.4f}")
    os.makedirs(out, exist_ok=True)
    torch.onnx.export(net, (torch.from_numpy(xte[:1]),), os.path.join(out, "digits_cnn.onnx"),
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    np.savez_compressed(os.path.join(out, "digits_samples.npz"), x=xte, labels=yte.astype(np.int64))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "packager", "data"))
