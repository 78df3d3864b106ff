"""Handing models to onnxruntime's quantizers, which want paths and write files: everything goes through a
private temporary folder that is removed afterwards, so nothing is ever left behind in the user's folders.

Models are always passed by path: quantize_dynamic and quantize_static rewrite a ModelProto given to them
in place (its tensors become references to external files in a folder they then delete).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator

import onnx
import onnxruntime as ort

from edgepack.runtime.ortconfig import OPT_LEVELS as _LEVELS

# Past this size a model is saved with its tensors in a side file: protobuf cannot hold 2 GB.
_EXTERNAL_ABOVE = 1 << 30


@contextlib.contextmanager
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="edgepack-quantize-") as folder:
        yield folder


def save(model: onnx.ModelProto, folder: str, name: str = "model.onnx") -> str:
    path = os.path.join(folder, name)
    if model.ByteSize() > _EXTERNAL_ABOVE:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        onnx.save(copy, path, save_as_external_data=True, location=f"{name}.data", size_threshold=1024)
    else:
        onnx.save(model, path)
    return path


def load(path: str) -> onnx.ModelProto:
    return onnx.load(path, load_external_data=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the quantizers' chatter (they log "consider pre-processing" on the root logger for every model
    and print calibration progress): edgepack checks the result itself and reports what it finds."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    ort.set_default_logger_severity(3)  # the sessions the quantizers open themselves: errors only
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)
        ort.set_default_logger_severity(2)  # onnxruntime's default (it has no getter to restore from)


def session(model: onnx.ModelProto, folder: str, name: str, options: ort.SessionOptions | None = None,
            level: str | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session on `model` (a big model goes through a file in `folder`), with `options`
    (default: onnxruntime's) or only the graph optimization `level` ("disable", "basic", "extended", "all")."""
    options = options or ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions
    if level is not None:
        options.graph_optimization_level = _LEVELS[level]
    source = save(model, folder, name) if model.ByteSize() > _EXTERNAL_ABOVE else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


