"""Reading the model to package: a path to an .onnx file (weights inline or in external data files, models
over 2 GB included) or an onnx.ModelProto. Converters for other frameworks plug in here (import step)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import external_data_helper

from edgepack.runtime.errors import ModelError


@dataclass
class Source:
    """A model ready for the packager, with what provenance records about where it came from."""

    model: onnx.ModelProto
    kind: str                       # "onnx", "torch", "sklearn", ...
    name: str                       # file name (no folders: bundles are deterministic across machines)
    sha256: str                     # of the source bytes as given
    size: int                       # bytes of the source as given
    options: dict[str, Any] = field(default_factory=dict)


def _hash_files(paths: list[str]) -> tuple[str, int]:
    digest, total = hashlib.sha256(), 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
                total += len(chunk)
    return digest.hexdigest(), total


def _external_files(model: onnx.ModelProto, folder: str) -> list[str]:
    names = []
    for t in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(t):
            info = external_data_helper.ExternalDataInfo(t)
            if info.location not in names:
                names.append(info.location)
    return [os.path.join(folder, n) for n in names]


def from_path(path: str | os.PathLike) -> Source:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        skeleton = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path}: not an ONNX model ({str(e).splitlines()[0][:200]})") from None
    folder = os.path.dirname(os.path.abspath(path))
    files = _external_files(skeleton, folder)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ModelError(f"{path}: external data file {os.path.basename(missing[0])!r} is missing; keep the "
                         "model's data files beside it")
    sha, size = _hash_files([path, *files])
    if files:
        try:
            external_data_helper.load_external_data_for_model(skeleton, folder)
        except Exception as e:
            raise ModelError(f"{path}: cannot read external data ({str(e)[:200]})") from None
    return Source(skeleton, "onnx", os.path.basename(path), sha, size)


def from_proto(model: onnx.ModelProto) -> Source:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for t in external_data_helper._get_all_tensors(copy):
        if external_data_helper.uses_external_data(t):
            raise ModelError(f"tensor {t.name!r} refers to external data; pass the model's path instead, or load "
                             "it with onnx.load(path) so that its data comes along")
    data = copy.SerializeToString() if copy.ByteSize() < (1 << 31) - 1 else b""
    return Source(copy, "onnx", copy.graph.name or "model", hashlib.sha256(data).hexdigest(), len(data))


def load_source(model: Any, example_inputs: Any = None, **options: Any) -> Source:
    """Turn what the user passed into a Source, or say what edgepack accepts."""
    if isinstance(model, onnx.ModelProto):
        return from_proto(model)
    if isinstance(model, (str, os.PathLike)):
        return from_path(model)
    raise ModelError(f"cannot package a {type(model).__name__}: pass a path to an .onnx file or an "
                     "onnx.ModelProto")
