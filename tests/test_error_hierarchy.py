"""Every exception edgepack raises on bad input derives from edgepack.EdgepackError: checked by walking every
module of the package, both the classes it defines and every `raise` statement in its source."""

import ast
import builtins
import importlib
import inspect
import pkgutil

import edgepack
import edgepack.packager
import edgepack.runtime
from edgepack import EdgepackError
from edgepack.packager import errors as packager_errors
from edgepack.runtime import errors

# Exception types edgepack defines that are not EdgepackErrors, and why none reaches a caller as bad input.
INTERNAL = {
    "edgepack.runtime.codecs.CodecError": "raised by a frame decoder; Bundle.decode_frame raises CorruptTensor",
    "edgepack.runtime.zstdframe.FrameShapeError": "raised by the zstd frame-shape check; zstd_decode_into raises "
                                                  "CodecError",
    "edgepack.runtime.protorecords.ProtoError": "raised by the graph walker; load() raises InvalidGraph, the "
                                             "packager ModelError",
    "edgepack.packager.writer.WriterStateError": "the writer used out of order: a bug in the caller, not input",
    "edgepack.packager.convert.from_pt2._Refused": "raised inside torch.export.load where it would unpickle; "
                                                   "load_pt2 raises UntrustedPickle",
    "edgepack.runtime.tokenizer_regex._Refused": "raised inside the split-pattern parser; regex_problem() returns its "
                                                 "message, and the tokenizer check raises InvalidManifest",
    "edgepack.packager.prune.rewrite_check.PruneBug": "the rewritten graph is invalid: a bug in a pruning rule, "
                                                      "not input",
}
# Built-in exceptions raised on purpose, by (module, function), and where they are caught.
BUILTIN_RAISES = {
    ("edgepack.runtime.manifest", "_reject_constant"): "a json.loads hook: loads() raises InvalidManifest",
    ("edgepack.packager.encode", "trials"): "an unknown codec or dtype from edgepack's own candidate lists: a bug",
    ("edgepack.packager.prune.importance", "scores"): "the caller forgot the activation means: a bug",
    ("edgepack.packager.prune.labels", "union"): "a pruning rule paired channel lists of unequal length: a bug",
    ("edgepack.packager.options", "_value"): "an options class annotates a field with a type that has no rule: "
                                             "a bug in the class, found by its first construction",
    ("edgepack.runtime.feeder", "_wait_for_room"): "onnxruntime closed the FIFO: Feeder.run catches it and "
                                                    "reports onnxruntime's own error",
}

# Functions whose result is raised, and why that is an EdgepackError.
RAISE_HELPERS = {
    "min": "re-raises the first of the exceptions worker threads caught (host.run_parallel)",
    "next": "re-raises an exception a worker thread caught (feeder.Feeder)",
    "_rebuild": "re-creates the EdgepackError a measuring child process reported (runtime/measure_child.py)",
}


def modules():
    """Every module of the package, subpackages included (each top-level package has its own folder)."""
    for package in (edgepack, edgepack.runtime, edgepack.packager):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            yield importlib.import_module(info.name)


def test_the_walk_sees_the_whole_package():
    names = {m.__name__ for m in modules()}
    assert {"edgepack.cli", "edgepack.runtime.reader", "edgepack.runtime.session", "edgepack.runtime.signature",
            "edgepack.packager.sign", "edgepack.packager.writer"} <= names
    assert len(names) >= 25


def test_every_exception_class_edgepack_defines_is_an_edgepack_error():
    seen = []
    for module in modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, Warning)
                    and obj.__module__ == module.__name__):  # warnings are reported, not raised
                qualified = f"{module.__name__}.{name}"
                seen.append(qualified)
                assert issubclass(obj, EdgepackError) or qualified in INTERNAL, qualified
    assert len(seen) > 25 and set(INTERNAL) <= set(seen)


def _raises(module):
    """(function name, raised name, its return annotation if it names a function) for every
    `raise Name(...)` in the module's source."""
    tree = ast.parse(inspect.getsource(module))
    returns = {f.name: f.returns.id for f in ast.walk(tree)
               if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and isinstance(f.returns, ast.Name)}
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                yield func.name, node.exc.func.id, returns.get(node.exc.func.id)


def _resolve(module, name):
    """The class a name stands for in a module: its own, an edgepack error (the runtime's or the packager's)
    imported inside a function, or a builtin; None for a function."""
    for space in (module, errors, packager_errors, builtins):
        value = getattr(space, name, None)
        if value is not None:
            return value if inspect.isclass(value) else None
    return None


def test_the_packager_errors_live_in_the_packager():
    moved = ("ExportFailed", "ConversionMismatch", "UntrustedPickle", "QuantizationError", "UnquantizedWeights",
             "BudgetNotMet", "MissingExtra")
    for name in moved:
        assert not hasattr(errors, name), name
        cls = getattr(packager_errors, name)
        assert cls.__module__ == "edgepack.packager.errors" and issubclass(cls, EdgepackError)
        assert getattr(edgepack, name) is cls and getattr(edgepack.packager, name) is cls
    assert issubclass(packager_errors.MissingExtra, errors.MissingDependency)


def test_every_raise_names_an_edgepack_error():
    checked, offenders = 0, []
    for module in modules():
        for function, name, returns in _raises(module):
            checked += 1
            if name in RAISE_HELPERS or (function == "__getattr__" and name == "AttributeError"):
                continue  # the module __getattr__ protocol needs AttributeError for a name it lacks
            raised = _resolve(module, name) or (_resolve(module, returns) if returns else None)
            if raised is None:  # a function whose result is raised, not one of RAISE_HELPERS
                offenders.append(f"{module.__name__}.{function} raises {name}(...)")
                continue
            qualified = f"{raised.__module__}.{raised.__qualname__}"
            if not (issubclass(raised, EdgepackError) or qualified in INTERNAL
                    or (module.__name__, function) in BUILTIN_RAISES):
                offenders.append(f"{module.__name__}.{function} raises {raised.__name__}")
    assert offenders == []
    assert checked > 120
