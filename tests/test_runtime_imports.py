"""The runtime is what goes onto the device: it must not pull in the packager's dependencies."""

import ast
import pathlib
import subprocess
import sys

RUNTIME = pathlib.Path(__file__).resolve().parent.parent / "runtime"
ALLOWED = {"numpy", "onnxruntime", "zstandard"}
# The one optional package (edgepack[text]), imported only when text is encoded or decoded (issue 17).
OPTIONAL = {"tokenizer.py": {"tokenizers"}}


def test_import_runtime_pulls_in_nothing_heavy():
    code = ("import sys, edgepack.runtime, edgepack.runtime.session, edgepack.runtime.measure_child, "
            "edgepack.runtime.measure, edgepack.runtime.device, edgepack.runtime.compat; "
            "print(' '.join(m for m in ('onnx', 'click', 'torch', 'sklearn', 'edgepack.packager') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


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
