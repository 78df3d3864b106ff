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

# Exception types edgepack defines that are not EdgepackErrors, and why none reaches a caller as bad input.
INTERNAL = {
    "edgepack.runtime.codecs.CodecError": "raised by a frame decoder; Bundle.decode_frame raises CorruptTensor",
    "edgepack.runtime.protowire.ProtoError": "raised by the graph walker; load() raises InvalidGraph, the "
                                             "packager ModelError",
    "edgepack.packager.writer.WriterStateError": "the writer used out of order: a bug in the caller, not input",
}
# Built-in exceptions raised on purpose, by (module, function), and where they are caught.
BUILTIN_RAISES = {
    ("edgepack.runtime.manifest", "_reject_duplicates"): "a json.loads hook: loads() raises InvalidManifest",
    ("edgepack.runtime.manifest", "_reject_constant"): "a json.loads hook: loads() raises InvalidManifest",
}


def modules():
    for package in (edgepack, edgepack.runtime, edgepack.packager):
        yield package
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
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
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                qualified = f"{module.__name__}.{name}"
                seen.append(qualified)
                assert issubclass(obj, EdgepackError) or qualified in INTERNAL, qualified
    assert len(seen) > 25 and set(INTERNAL) <= set(seen)


def _raises(module):
    """(function name, raised name) for every `raise Name(...)` in the module's source."""
    tree = ast.parse(inspect.getsource(module))
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                yield func.name, node.exc.func.id


def test_every_raise_names_an_edgepack_error():
    checked = 0
    for module in modules():
        for function, name in _raises(module):
            raised = getattr(module, name, None) or getattr(builtins, name)
            if not inspect.isclass(raised):  # `raise min(errors)`: re-raising an exception caught earlier
                assert name in ("min", "next"), f"{module.__name__}.{function} raises {name}(...)"
                continue
            qualified = f"{raised.__module__}.{raised.__qualname__}"
            if issubclass(raised, EdgepackError) or qualified in INTERNAL:
                checked += 1
                continue
            assert (module.__name__, function) in BUILTIN_RAISES, f"{module.__name__}.{function} raises {name}"
            checked += 1
    assert checked > 120
