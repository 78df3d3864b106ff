import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/graphs.py and friends are plain helper modules


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


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
