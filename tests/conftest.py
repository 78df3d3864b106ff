import importlib.util
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/graphs.py and friends are plain helper modules

import prebuilt

# Where only the runtime is installed (a device, or the aarch64 check's emulated one), tests that build
# models or bundles are skipped; the rest read prebuilt cases (tests/prebuilt.py).
HAS_PACKAGER = all(importlib.util.find_spec(m) is not None for m in ("onnx", "edgepack.packager"))


def pytest_configure(config):
    config.addinivalue_line("markers", "packager: needs onnx and the packager; skipped where only the runtime "
                                       "is installed (scripts/arm64-check runs the rest on aarch64)")
    config.addinivalue_line("markers", "arm64: the aarch64 emulation check (tests/test_arm64.py); deselect it with "
                                       "-m 'not slow and not arm64'")


def pytest_collection_modifyitems(config, items):
    if HAS_PACKAGER:
        return
    skip = pytest.mark.skip(reason="needs onnx and the packager; only the runtime is installed here")
    for item in items:
        if "packager" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def cases(tmp_path_factory):
    """Prebuilt models and bundles by name (tests/prebuilt.py)."""
    return prebuilt.Cases(str(tmp_path_factory.mktemp("cases")))


@pytest.fixture(scope="session")
def mlp_files(tmp_path_factory):
    """graphs.mlp() saved as m.onnx, its feeds as feeds.npz; returns (folder, feeds)."""
    import numpy as np
    import onnx

    import graphs

    d = tmp_path_factory.mktemp("mlp")
    model, feeds = graphs.mlp()
    onnx.save(model, d / "m.onnx")
    np.savez(d / "feeds.npz", **feeds)
    return d, feeds


@pytest.fixture(scope="session")
def digits_cnn(tmp_path_factory):
    """The residual digits CNN of tests/digits.py, trained once per session (about a minute of CPU)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import digits

    folder = tmp_path_factory.mktemp("digits")
    path, path_bn, calib, x, y = digits.train(str(folder))
    return {"path": path, "path_bn": path_bn, "calib": calib, "x": x, "y": y, "folder": folder}
