"""The models and bundles the runtime's tests open, built here or read from a folder built elsewhere.

On a development machine the tests build each case with onnx and the packager on first use. On a device
only the runtime is installed, so the cases are built beforehand on a machine that has the packager:

    python tests/prebuilt.py DIR --target raspberry-pi-4     # on x86: DIR/<case>.onnx, .npz, .edgepack
    EDGEPACK_PREBUILT=DIR python -m pytest tests/...         # on the device (scripts/arm64-check does both)

A case is the source model (.onnx, which plain onnxruntime reads without the onnx package), its feeds
(.npz) and its bundle. The round-trip tests compare plain onnxruntime on the model with edgepack's runtime
on the bundle on the same machine, so they stay bit-exact on any architecture.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np

FOLDER = os.environ.get("EDGEPACK_PREBUILT")
INDEX = "index.json"
ERRORS_CASE = "errors"  # the bundle the bundle-error tests take apart


@dataclass(frozen=True)
class Case:
    model: str
    feeds: dict
    bundle: str


def _builders() -> dict:
    import graphs  # onnx.helper: only where the packager is

    return {ERRORS_CASE: lambda: graphs.mlp(hidden=(256, 256)), **graphs.ALL}


def round_trip_kinds() -> list[str]:
    """The graphs of tests/graphs.py, by name (read from the folder's index where graphs cannot be built)."""
    if FOLDER:
        with open(os.path.join(FOLDER, INDEX)) as f:
            return json.load(f)["round_trip"]
    import graphs

    return sorted(graphs.ALL)


def build(name: str, folder: str, target: str | None = None) -> Case:
    """Build case `name` into `folder` with onnx and the packager."""
    import onnx

    import edgepack

    model, feeds = _builders()[name]()
    case = _paths(name, folder)
    onnx.save(model, case.model)
    np.savez(os.path.join(folder, f"{name}.npz"), **feeds)
    edgepack.package(case.model, output=case.bundle, target=target)
    return Case(case.model, feeds, case.bundle)


def _paths(name: str, folder: str) -> Case:
    return Case(os.path.join(folder, f"{name}.onnx"), {}, os.path.join(folder, f"{name}.edgepack"))


class Cases:
    """Cases by name: read from EDGEPACK_PREBUILT when it is set, else built into `scratch` once."""

    def __init__(self, scratch: str):
        self.folder = FOLDER or scratch
        self._built: dict[str, Case] = {}

    def __getitem__(self, name: str) -> Case:
        if name not in self._built:
            self._built[name] = self._read(name) if FOLDER else build(name, self.folder)
        return self._built[name]

    def _read(self, name: str) -> Case:
        case = _paths(name, self.folder)
        if not os.path.exists(case.bundle):
            raise FileNotFoundError(f"{case.bundle}: not prebuilt; run `python tests/prebuilt.py {self.folder}`")
        with np.load(os.path.join(self.folder, f"{name}.npz")) as data:
            return Case(case.model, {k: data[k] for k in data.files}, case.bundle)


def build_all(folder: str, target: str | None) -> None:
    os.makedirs(folder, exist_ok=True)
    for name in _builders():
        build(name, folder, target)
    with open(os.path.join(folder, INDEX), "w") as f:
        json.dump({"round_trip": round_trip_kinds(), "target": target}, f)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--target"):
        sys.exit("usage: python tests/prebuilt.py DIR [--target NAME]")
    build_all(args[0], args[2] if len(args) == 3 else None)
