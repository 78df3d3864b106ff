"""A residual CNN trained on scikit-learn's 8x8 digits in a few seconds, exported to ONNX: the model the
pruning accuracy tests use (the same shape as the acceptance check's: conv 1->32->64, a residual block
64->64->64, BatchNorm after every conv, Linear 1024->128->10).

`train(folder)` trains once and writes digits_cnn.onnx (BatchNorm folded into the convs, as exporters do
in eval mode) and digits_cnn_bn.onnx (constant folding off: the BatchNormalization nodes stay, so the
BatchNorm rule meets a trained model too); it returns the two paths, 200 calibration samples from the
training split, and the held-out test split.
"""

from __future__ import annotations

import os
import sys
import warnings



def train(folder: str, epochs: int = 8, seed: int = 0):
    import torch
    from torch import nn

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from make_demo_model import train as train_net  # the training loop the demo model was trained with

    torch.manual_seed(seed)
    torch.set_num_threads(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
            self.res = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                     nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64))
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))

        def forward(self, x):
            h = self.stem(x)
            return self.head(self.pool(torch.relu(h + self.res(h))))

    net = Net()
    _, (xtr, xte, ytr, yte) = train_net(net, epochs=epochs, lr=3e-3)
    net.eval()
    paths = {}
    for name, fold in (("digits_cnn.onnx", True), ("digits_cnn_bn.onnx", False)):
        paths[fold] = os.path.join(folder, name)
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (torch.from_numpy(xte[:1]),), paths[fold], input_names=["x"],
                              output_names=["logits"],
                              dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False,
                              do_constant_folding=fold)
    return paths[True], paths[False], xtr[:200], xte, yte
