"""A scikit-learn model saved with joblib (.joblib) or pickle (.pkl, .pickle).

Unpickling runs whatever code the file holds, so these load only when the caller says they trust the file
(--trust-pickle; Python: convert={"trust_pickle": True}). Nothing is read before that.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from edgepack.packager.errors import UntrustedPickle
from edgepack.runtime.errors import ModelError
from edgepack.runtime.text import error_line

from ..imported import Source, hash_files
from .extras import require
from .from_sklearn import from_estimator
from .options import ConvertOptions


def from_pickle(path: str, example_inputs: Any, opts: ConvertOptions) -> Source:
    if not opts.trust_pickle:
        raise UntrustedPickle(f"{path}: loading a {os.path.splitext(path)[1]} file runs any code it contains; pass "
                              "--trust-pickle (Python: convert={'trust_pickle': True}) only for a file you made or "
                              "trust")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    require("sklearn", "reading a scikit-learn model", "sklearn")
    require("skl2onnx", "converting a scikit-learn model", "sklearn")
    estimator = _load(path)
    from sklearn.base import BaseEstimator

    if not isinstance(estimator, BaseEstimator):
        raise ModelError(f"{path}: holds a {type(estimator).__name__}, not a scikit-learn estimator")
    sha, size = hash_files([path])
    return from_estimator(estimator, example_inputs, opts, os.path.basename(path), sha, size)


def _load(path: str) -> Any:
    try:
        if path.endswith(".joblib"):
            joblib = require("joblib", "reading a .joblib model", "sklearn")
            return joblib.load(path)
        with open(path, "rb") as f:
            return pickle.load(f)
    except ImportError as e:  # the pickle names a module this environment lacks
        raise ModelError(f"{path}: the pickled model needs the module {e.name!r}, which is not installed") from e
    except Exception as e:
        raise ModelError(f"{path}: cannot unpickle it ({type(e).__name__}: {error_line(e)})") from e
