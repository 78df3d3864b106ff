import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/graphs.py and friends are plain helper modules


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
