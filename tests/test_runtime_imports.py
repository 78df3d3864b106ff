"""The runtime is what goes onto the device: it must not pull in the packager's dependencies."""

import ast
import pathlib
import subprocess
import sys

import pytest

RUNTIME = pathlib.Path(__file__).resolve().parent.parent / "runtime"
ALLOWED = {"numpy", "onnxruntime", "zstandard"}
# The one optional package (edgepack[text]), imported only when text is encoded or decoded (issue 17).
OPTIONAL = {"tokenizer.py": {"tokenizers"}}


def _imported(statements: str, wanted: str) -> str:
    """The modules that `statements` import, in a fresh interpreter, for which the expression `wanted`
    (over the module name m) is true."""
    code = (f"import sys; before = set(sys.modules); {statements}; "
            f"print(' '.join(sorted(m for m in set(sys.modules) - before if {wanted})))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_runtime_pulls_in_nothing_heavy():
    assert _imported("import edgepack.runtime, edgepack.runtime.session, edgepack.runtime.measure_child, "
                     "edgepack.runtime.measure, edgepack.runtime.device, edgepack.runtime.compat",
                     "m in ('onnx', 'click', 'torch', 'sklearn', 'edgepack.packager')") == ""


def test_runtime_sources_import_only_allowed_packages():
    stdlib = set(sys.stdlib_module_names)
    for path in RUNTIME.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED or top in OPTIONAL.get(path.name, ()) or \
                    name.startswith("edgepack.runtime"), (path.name, name)


def test_opening_a_bundle_reads_only_the_manifest(tmp_path):
    import onnx
    import edgepack
    import graphs

    model, _ = graphs.mlp_bytes(50)
    onnx.save(model, tmp_path / "m.onnx")
    edgepack.package(tmp_path / "m.onnx", output=tmp_path / "m.edgepack")
    code = f"""
import resource, edgepack.runtime as rt
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
before = rss()
b = rt.open_bundle({str(tmp_path / 'm.edgepack')!r})
m = b.manifest
print((rss() - before) / 2**20, len(m.tensors))
"""
    extra_mb, n = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.split()
    assert int(n) == 24
    assert float(extra_mb) < 5.0


def test_load_imports_only_what_loading_needs():
    """edgepack.runtime's names are imported on first use: a process that loads a bundle does not import the
    delta machinery (tempfile, shutil and with them bz2, lzma, random), nor OpenSSL for a small bundle."""
    assert _imported("from edgepack.runtime import load; import edgepack.runtime as rt; rt.EdgepackError, rt.TRUSTED",
                     "m.startswith('edgepack.runtime.delta') or m in ('tempfile', 'shutil', 'bz2', 'lzma', 'random', "
                     "'hashlib', 'edgepack.runtime.measure')") == ""


def test_every_public_runtime_name_resolves():
    import edgepack.runtime as rt

    assert set(rt._HOME) == set(rt.__all__)
    for name in rt.__all__:
        assert getattr(rt, name) is not None, name
    assert set(rt.__all__) <= set(dir(rt))
    with pytest.raises(AttributeError, match="no_such_name"):
        rt.no_such_name  # noqa: B018


def test_every_public_edgepack_name_resolves_and_is_listed():
    """dir(edgepack) lists the packager's errors, which edgepack imports on first use, as edgepack.runtime's
    dir() lists its own (help(), completion and `from edgepack import *` see the same names)."""
    import edgepack

    for name in edgepack.__all__:
        assert getattr(edgepack, name) is not None, name
    assert set(edgepack.__all__) <= set(dir(edgepack))
