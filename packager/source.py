"""Reading the model to package: a path to an .onnx file (weights inline or in external data files, models
over 2 GB included) or an onnx.ModelProto; a PyTorch or scikit-learn model, or a file holding one, goes
through its converter in edgepack.packager.convert (imported only then)."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import onnx
from onnx import external_data_helper

from edgepack.runtime.errors import ModelError, OptionError
from edgepack.runtime.text import clip

from .convert.options import ConvertOptions
from .options import build
from .dims import normalize_dims
from .imported import PICKLE_SUFFIXES, Source, hash_files

__all__ = ["Source", "hash_files", "load_source", "from_path", "from_proto"]


def _external_files(model: onnx.ModelProto, path: str, folder: str) -> list[str]:
    """The external data files the model names, each checked before anything reads it: a relative path
    that stays inside the model's folder (symbolic links resolved) and names a regular file."""
    names: list[str] = []
    for t in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(t):
            info = external_data_helper.ExternalDataInfo(t)
            if info.location not in names:
                names.append(info.location)
    files = []
    real_folder = os.path.realpath(folder)
    for name in names:
        if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or "\0" in name:
            raise ModelError(f"{path}: tensor data location {name[:200]!r} is not a file name inside the "
                             "model's folder; keep the model's data files beside it, named relatively")
        full = os.path.join(folder, name)
        real = os.path.realpath(full)
        if os.path.commonpath([real, real_folder]) != real_folder:
            raise ModelError(f"{path}: external data file {name[:200]!r} leads out of the model's folder "
                             "(a symbolic link); copy the data beside the model")
        files.append(full)
    return files


def _regular(path: str, what: str) -> None:
    """Refuse what is not a plain file on disk (a folder, FIFO, device or a /proc or /sys file), before
    opening it: reading one can block for ever or never end."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        raise ModelError(f"{path}: {what} is missing; keep the model's data files beside it") from None
    # (an absent file reads as missing, as before; anything else that is not a plain file is refused)
    real = os.path.realpath(path)
    if not stat.S_ISREG(st.st_mode) or any(real == p or real.startswith(p + "/") for p in ("/proc", "/sys", "/dev")):
        raise ModelError(f"{path}: {what} is not a regular file")


def from_path(path: str | os.PathLike) -> Source:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    _regular(path, "the model")
    try:
        skeleton = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path}: not an ONNX model ({clip(str(e).splitlines()[0], 200)})") from None
    folder = os.path.dirname(os.path.abspath(path))
    files = _external_files(skeleton, path, folder)
    for f in files:
        _regular(f, f"external data file {os.path.basename(f)!r}")
    sha, size = hash_files([path, *files])
    if files:
        try:
            external_data_helper.load_external_data_for_model(skeleton, folder)
        except Exception as e:
            raise ModelError(f"{path}: cannot read external data ({clip(e, 200)})") from None
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
    """Turn what the user passed into a Source, or say what edgepack accepts.

    options: ConvertOptions fields (opset, dynamic_batch, input_names, output_names, rtol, atol,
    trust_pickle), for PyTorch and scikit-learn models only.
    """
    source = _load(model, example_inputs, build(ConvertOptions, options))
    changed = normalize_dims(source.model)
    if changed:
        source.options["dynamic_dims"] = changed  # dim_value -1 or 0, as Paddle2ONNX writes a dynamic dimension
    return source


def _load(model: Any, example_inputs: Any, opts: ConvertOptions) -> Source:
    if isinstance(model, (str, os.PathLike)):
        if os.path.isdir(model):
            from .convert.from_hf import from_hf, is_hf_folder

            if not is_hf_folder(os.fspath(model)):
                raise ModelError(f"{os.fspath(model)}: a folder is packaged as a Hugging Face model, which needs "
                                 "config.json, *.safetensors and tokenizer.json in it")
            defaults = ConvertOptions()
            imported = from_hf(os.fspath(model), opts.rtol, None if opts.atol == defaults.atol else opts.atol)
            sha, size = hash_files(imported.files)
            return Source(imported.model, "huggingface", os.path.basename(os.path.normpath(model)), sha, size,
                          imported.options, imported.llm)
        return _from_file(os.fspath(model), example_inputs, opts)
    if _is_torch(model):
        from .convert import from_torch

        if isinstance(model, sys.modules["torch"].export.ExportedProgram):
            return from_torch.from_program(model, opts, "ExportedProgram")
        return from_torch.from_module(model, example_inputs, opts)
    if _is_sklearn(model):
        from .convert.from_sklearn import from_estimator

        return from_estimator(model, example_inputs, opts)
    if isinstance(model, onnx.ModelProto):
        _no_options(opts, "an onnx.ModelProto")
        return from_proto(model)
    raise ModelError(f"cannot package a {type(model).__name__}: pass a path (.onnx, .pt2, or with trust_pickle a "
                     ".joblib/.pkl scikit-learn model), an onnx.ModelProto, a torch.nn.Module or ExportedProgram, "
                     "or a fitted scikit-learn estimator")


def _from_file(path: str, example_inputs: Any, opts: ConvertOptions) -> Source:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".pt2":
        if example_inputs is not None:
            raise OptionError(f"{path}: a .pt2 ExportedProgram is checked on the example inputs saved in it; "
                              "drop example_inputs (--example-inputs)")
        from .convert.from_pt2 import from_pt2

        return from_pt2(path, opts)
    if suffix in PICKLE_SUFFIXES:
        from .convert.from_pickle import from_pickle

        return from_pickle(path, example_inputs, opts)
    if suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise ModelError(f"{path}: a {suffix} file holds weights (or a pickled module) that need the model's Python "
                         "code: pass the torch.nn.Module to edgepack.package, or save it as a .pt2 with "
                         "torch.export.save(torch.export.export(model, args), 'model.pt2')")
    _no_options(opts, "an ONNX file")
    source = from_path(path)
    from .convert.llm_onnx import llm_beside

    source.llm = llm_beside(source.model, path)
    return source


def _no_options(opts: ConvertOptions, what: str) -> None:
    if not opts.is_default():
        raise OptionError(f"convert options apply to PyTorch and scikit-learn models, not to {what}")


def _is_torch(model: Any) -> bool:
    """Without importing torch: a torch model can only exist if torch is already imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, (torch.nn.Module, torch.export.ExportedProgram))


def _is_sklearn(model: Any) -> bool:
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(model, base.BaseEstimator)
