import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/graphs.py and friends are plain helper modules


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def digits_cnn(tmp_path_factory):
    """The residual digits CNN of tests/digits.py, trained once per session (about a minute of CPU)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import digits

    folder = tmp_path_factory.mktemp("digits")
    path, path_bn, calib, x, y = digits.train(str(folder))
    return {"path": path, "path_bn": path_bn, "calib": calib, "x": x, "y": y, "folder": folder}
