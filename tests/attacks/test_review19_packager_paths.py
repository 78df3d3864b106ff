"""Issue 19, finding 9: the packager hashed the files a model's external data names before onnx refused
them, so an absolute path to /proc/self/pagemap hung it, and a FIFO beside the model blocks a reader for
ever. Each location is now checked (relative, inside the model's folder, a regular file) before anything
is read. Each case runs in a child process with a timeout, so that a hang fails instead of blocking."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _model_with_location(folder, location: str):
    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "m.onnx"
    onnx.save(model, path)
    return path


def _package_each(paths):
    """Package each model in one child process; {path: what happened}."""
    code = f"""
import json, edgepack
from edgepack.runtime.errors import ModelError
out = {{}}
for path in {[str(p) for p in paths]!r}:
    try:
        edgepack.package(path, output=path + ".edgepack")
        out[path] = "packaged"
    except ModelError as e:
        out[path] = "ModelError: " + str(e)
print(json.dumps(out))
"""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("packaging hung on a model's external data path")
    import json

    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fifo(folder):
    os.mkfifo(folder / "data.bin")
    return "data.bin"


def _escaping_link(folder):
    os.symlink("/etc/hostname", folder / "data.bin")
    return "data.bin"


CASES = {
    "an absolute /proc path": lambda folder: "/proc/self/pagemap",
    "a path out of the folder": lambda folder: "../../../../proc/self/pagemap",
    "a FIFO beside the model": _fifo,
    "a folder beside the model": lambda folder: (os.mkdir(folder / "d"), "d")[1],
    "a symbolic link out of the folder": _escaping_link,
}


def test_a_hostile_external_data_location_is_refused_before_reading(tmp_path):
    paths = {}
    for i, (case, make) in enumerate(CASES.items()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        paths[case] = _model_with_location(folder, make(folder))
    results = _package_each(list(paths.values()))
    for case, path in paths.items():
        assert results[str(path)].startswith("ModelError:"), (case, results[str(path)])
        assert "not" in results[str(path)] or "out of" in results[str(path)], (case, results[str(path)])
        assert not os.path.exists(str(path) + ".edgepack")
