"""PyTorch to ONNX: an nn.Module (with example inputs) or a torch.export ExportedProgram.

The exporter is torch.onnx.export(dynamo=True), the torch.export-based one, because:
- it is torch 2.13's default and maintained one; the TorchScript exporter (dynamo=False) is deprecated;
- it is the only one that takes an ExportedProgram, so a module and a .pt2 file go the same way;
- it captures the whole program or fails: Python control flow on tensor values is an error, not one branch
  silently traced for the example, as TorchScript tracing does;
- it runs offline: onnxscript's operator library is installed with the `torch` extra, nothing is fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import warnings
from typing import Any
from collections.abc import Iterator

import numpy as np

from edgepack.packager.errors import ExportFailed
from edgepack.runtime.errors import ModelError, OptionError
from edgepack.runtime.text import error_line

from ..imported import Source
from .check import compare, run_onnx
from .extras import require
from .options import ConvertOptions

EXPORTER = "torch.onnx.export(dynamo=True)"


def from_module(module: Any, example_inputs: Any, opts: ConvertOptions) -> Source:
    """Export an nn.Module, traced on `example_inputs`, and check it against the module's own outputs."""
    torch = require("torch", "exporting a PyTorch model", "torch")
    name = type(module).__name__
    if example_inputs is None:
        raise OptionError(f"{name}: a PyTorch model needs example_inputs (a tensor or a tuple of tensors, batch "
                          "first) to trace it and to check the ONNX model against it")
    args, kwargs = _as_args(torch, example_inputs, name)
    dynamic = _batch_shapes(torch, args, kwargs) if opts.dynamic_batch else None
    was_training = module.training
    module.eval()  # export what is deployed: dropout off, batch-norm running statistics
    try:
        reference = _forward(torch, module, args, kwargs, name)
        model = _export(torch, module, args, kwargs, dynamic, opts, len(reference), name)
        info = _check(torch, model, module, args, kwargs, reference, opts, name)
    finally:
        module.train(was_training)
    sha, size = state_digest(torch, module.state_dict())
    return Source(model, "torch", name, sha, size, {"format": "nn.Module", **info})


def from_program(program: Any, opts: ConvertOptions, name: str, sha256: str | None = None,
                 size: int | None = None) -> Source:
    """Export a torch.export ExportedProgram with its own example inputs and shapes (a .pt2 file holds them;
    its batch axis is dynamic only if it was exported so)."""
    torch = require("torch", "exporting a PyTorch model", "torch")
    if opts.dynamic_batch is not True or opts.input_names:
        raise OptionError(f"{name}: an ExportedProgram keeps the shapes and input names it was exported with; "
                          "set them in torch.export.export (dynamic_shapes=...) instead")
    if program.example_inputs is None:
        raise ModelError(f"{name}: the ExportedProgram has no example inputs to check the ONNX model with; "
                         "export it with torch.export.export(model, args) and save it again")
    args, kwargs = program.example_inputs
    module = program.module()
    reference = _forward(torch, module, args, kwargs, name)
    model = _export(torch, program, args, kwargs, None, opts, len(reference), name)
    info = _check(torch, model, module, args, kwargs, reference, opts, name)
    if sha256 is None or size is None:
        sha256, size = state_digest(torch, program.state_dict)
    return Source(model, "torch", name, sha256, size, {"format": "ExportedProgram", **info})


def _as_args(torch: Any, example: Any, name: str) -> tuple[tuple, dict]:
    """A tensor, a tuple/list of tensors (positional) or a dict (keyword); numpy arrays become tensors."""
    def tensor(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
        if not isinstance(v, torch.Tensor):
            raise OptionError(f"{name}: example_inputs must be tensors or numpy arrays, got {type(v).__name__}")
        return v

    if isinstance(example, dict):
        return (), {str(k): tensor(v) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return tuple(tensor(v) for v in example), {}
    return (tensor(example),), {}


def _batch_shapes(torch: Any, args: tuple, kwargs: dict) -> Any:
    """The first axis of every input, one shared symbol: the batch."""
    batch = torch.export.Dim("batch")
    spec = lambda t: {0: batch} if t.dim() >= 1 else None
    if kwargs:
        return {k: spec(v) for k, v in kwargs.items()}
    return tuple(spec(a) for a in args)


def _flat(torch: Any, outputs: Any) -> list[Any]:
    return [o for o in torch.utils._pytree.tree_leaves(outputs) if isinstance(o, torch.Tensor)]


def _forward(torch: Any, module: Any, args: tuple, kwargs: dict, name: str) -> list[np.ndarray]:
    try:
        with torch.no_grad():
            out = module(*args, **kwargs)
    except Exception as e:
        raise ModelError(f"{name}: the model fails on the example inputs: {type(e).__name__}: "
                         f"{error_line(e)}") from e
    flat = _flat(torch, out)
    if not flat:
        raise ModelError(f"{name}: the model returns no tensor")
    return [t.detach().cpu().numpy() for t in flat]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch.export logs warnings and errors, and prints graph dumps to stderr, while it tries; the error
    raised on failure carries what matters, so they are muted (loggers created later inherit the level)."""
    names = {n for n in logging.root.manager.loggerDict if n.startswith(_NOISY)} | set(_NOISY)
    loggers = [logging.getLogger(n) for n in sorted(names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_NOISY = ("torch", "onnxscript", "onnx_ir")


def _export(torch: Any, model: Any, args: tuple, kwargs: dict, dynamic: Any, opts: ConvertOptions,
            n_outputs: int, name: str) -> Any:
    require("onnxscript", "exporting a PyTorch model to ONNX", "torch")
    output_names = list(opts.output_names or (["output"] if n_outputs == 1 else
                                              [f"output_{i}" for i in range(n_outputs)]))
    if len(output_names) != n_outputs:
        raise OptionError(f"{name}: output_names has {len(output_names)} names but the model returns "
                          f"{n_outputs} tensors")
    try:
        with quiet():
            program = torch.onnx.export(model, args, kwargs=kwargs or None, dynamo=True, opset_version=opts.opset,
                                        dynamic_shapes=dynamic, input_names=opts.input_names,
                                        output_names=output_names, verbose=False, report=False)
    except Exception as e:
        raise ExportFailed(f"{name}: {EXPORTER} failed: {_explain(e, dynamic is not None)}") from e
    return program.model_proto


def _explain(e: BaseException, dynamic_batch: bool) -> str:
    """One line from torch.onnx's multi-page error: the stage, the root cause, and the user's line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    stage = error_line(text).split(". ")[0].rstrip(".")
    root = e
    while root.__cause__ is not None:
        root = root.__cause__
    cause = f"{type(root).__name__}: {error_line(root)}" if root is not e else ""
    where = re.search(r'File "([^"]+)", line (\d+), in \w+\n\s*(.+)', text)
    at = f" (at {where.group(1).rsplit('/', 1)[-1]}:{where.group(2)}: {where.group(3).strip()})" if where else ""
    hint = ""
    if "data-dependent" in text:
        hint = "; Python control flow on tensor values cannot be exported: use torch.where or torch.cond"
    elif dynamic_batch and re.search(r"size\(\)\[0\]|\bbatch\b", text):
        hint = ("; the first axis of every input is exported as one dynamic batch axis: if an input has no "
                "batch axis, pass convert={'dynamic_batch': False}")
    return "; ".join(p for p in (stage, cause) if p)[:600] + at + hint


def _check(torch: Any, model: Any, module: Any, args: tuple, kwargs: dict, reference: list[np.ndarray],
           opts: ConvertOptions, name: str) -> dict:
    """Run the ONNX model on the example inputs (and on its first row alone, when the batch is dynamic:
    batch 1 is what edge devices run) and compare with the module's outputs."""
    names = [i.name for i in model.graph.input]
    by_name = set(names) == set(kwargs) and not args  # keyword examples: the exporter names inputs after them
    tensors = [kwargs[n] for n in names] if by_name else [*args, *kwargs.values()]
    values = [t.detach().cpu().numpy() for t in tensors]
    if len(names) != len(values):
        raise ExportFailed(f"{name}: the ONNX model has {len(names)} inputs but the example has {len(values)} "
                           "tensors (non-tensor arguments are baked in as constants: pass tensors only)")
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != len(reference):
        raise ExportFailed(f"{name}: the ONNX model has {len(outputs)} outputs but the model returns "
                           f"{len(reference)} tensors")
    measured = compare(name, run_onnx(model, dict(zip(names, values)), name), dict(zip(outputs, reference)),
                       opts.rtol, opts.atol)
    dynamic = _dynamic_batch(model)
    if dynamic and all(v.ndim and v.shape[0] > 1 for v in values):
        first = [a[:1] for a in args]
        ref1 = _forward(torch, module, tuple(first), {k: v[:1] for k, v in kwargs.items()}, name)
        m1 = compare(f"{name} (batch of 1)", run_onnx(model, {n: v[:1] for n, v in zip(names, values)}, name),
                     dict(zip(outputs, ref1)), opts.rtol, opts.atol)
        measured["max_abs_diff"] = max(measured["max_abs_diff"], m1["max_abs_diff"])
    return {"exporter": EXPORTER, "torch": torch.__version__, "opset": _opset(model), "dynamic_batch": dynamic,
            "inputs": names, "outputs": outputs,
            "check": {"samples": int(values[0].shape[0]) if values and values[0].ndim else 1, **measured}}


def _dynamic_batch(model: Any) -> bool:
    """What the exported graph says, not what was asked: every input's first axis is symbolic."""
    dims = [i.type.tensor_type.shape.dim for i in model.graph.input]
    return bool(dims) and all(len(d) and not d[0].HasField("dim_value") for d in dims)


def _opset(model: Any) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def state_digest(torch: Any, state: dict) -> tuple[str, int]:
    """Identify the weights the model was exported with: SHA-256 over names, dtypes, shapes and bytes."""
    digest, size = hashlib.sha256(), 0
    for key, t in state.items():
        data = t.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)}:".encode())
        digest.update(data.tobytes())
        size += data.nbytes
    return digest.hexdigest(), size
