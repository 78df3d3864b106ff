"""scikit-learn to ONNX through skl2onnx: a fitted estimator or Pipeline.

Input: one 2-D input, "X" by default, (batch, n_features), typed after the example: float32 -> tensor(float),
float64 -> tensor(double), integers -> tensor(int64). Feed the bundle that dtype.
Outputs, skl2onnx's names: a classifier gives "label" (what predict returns) and "probabilities" (a
(batch, n_classes) array: predict_proba, or decision_function scores for classifiers without it); ZipMap is
turned off, so no list of dicts. Regressors and transformers give "variable".
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from typing import Any
from collections.abc import Mapping

import numpy as np

from edgepack.packager.errors import ExportFailed
from edgepack.runtime.errors import ModelError, OptionError
from edgepack.runtime.text import error_line

from ..imported import Source
from .check import compare, run_onnx
from .extras import require
from .options import ML_OPSET, ConvertOptions

SYNTHETIC_ROWS = 64  # check rows drawn from N(0, 1) when no example is given


def from_estimator(estimator: Any, example_inputs: Any, opts: ConvertOptions, name: str | None = None,
                   sha256: str | None = None, size: int | None = None) -> Source:
    """Convert a fitted estimator and check it against its own predict/predict_proba/transform."""
    sklearn = require("sklearn", "converting a scikit-learn model", "sklearn")
    skl2onnx = require("skl2onnx", "converting a scikit-learn model", "sklearn")
    label = name or type(estimator).__name__
    _require_fitted(estimator, label)
    if opts.output_names:
        raise OptionError(f"{label}: scikit-learn outputs keep skl2onnx's names (label, probabilities, variable); "
                          "output_names applies to PyTorch models")
    if opts.input_names and len(opts.input_names) != 1:
        raise OptionError(f"{label}: a scikit-learn model has one input; input_names must hold one name")
    input_name = opts.input_names[0] if opts.input_names else "X"
    X, synthetic = _example(estimator, example_inputs, label)
    model = _convert(skl2onnx, estimator, X, input_name, opts, label)
    got = run_onnx(model, {input_name: X}, label)
    reference = _reference(estimator, X, got)
    measured = compare(label, got, reference, opts.rtol, opts.atol)
    unchecked = [n for n in got if n not in reference]
    if sha256 is None or size is None:
        data = pickle.dumps(estimator, protocol=5)
        sha256, size = hashlib.sha256(data).hexdigest(), len(data)
    info = {"format": "scikit-learn", "class": type(estimator).__name__, "sklearn": sklearn.__version__,
            "exporter": f"skl2onnx {skl2onnx.__version__}", "opset": opts.opset, "ml_opset": ML_OPSET,
            "zipmap": False, "inputs": [input_name], "input_dtype": X.dtype.name, "n_features": int(X.shape[1]),
            "outputs": list(got),
            "check": {"samples": int(X.shape[0]), "example": "synthetic N(0,1)" if synthetic else "given",
                      **measured, **({"unchecked": unchecked} if unchecked else {})}}
    return Source(model, "sklearn", label, sha256, size, info)


def _require_fitted(estimator: Any, label: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ModelError(f"{label} is not fitted: call fit() before packaging it") from None


def _example(estimator: Any, example: Any, label: str) -> tuple[np.ndarray, bool]:
    """The check's input rows and the input type: the example as given, or N(0, 1) rows of n_features_in_."""
    n = getattr(estimator, "n_features_in_", None)
    if example is None:
        if n is None:
            raise OptionError(f"{label}: give example_inputs (a 2-D array, n_samples x n_features): the model does "
                              "not say how many features it takes")
        return np.random.default_rng(0).standard_normal((SYNTHETIC_ROWS, n)).astype(np.float32), True
    if isinstance(example, Mapping):
        if len(example) != 1:
            raise OptionError(f"{label}: a scikit-learn model takes one input array; the example has "
                              f"{len(example)} ({sorted(example)})")
        example = next(iter(example.values()))
    X = np.asarray(example)
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "fiu" or X.dtype == np.float16:
        raise OptionError(f"{label}: example_inputs must be one 2-D array (n_samples, n_features) of float32, "
                          f"float64 or integers, got {X.dtype.name} {list(X.shape)} (several typed columns, as "
                          "a ColumnTransformer over a DataFrame takes, are not supported)")
    if n is not None and X.shape[1] != n:
        raise OptionError(f"{label}: the model was fitted on {n} features; the example has {X.shape[1]}")
    return (X.astype(np.int64) if X.dtype.kind in "iu" else X), False


def _convert(skl2onnx: Any, estimator: Any, X: np.ndarray, input_name: str, opts: ConvertOptions,
             label: str) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType
    from sklearn.base import is_classifier

    kind = {"float32": FloatTensorType, "float64": DoubleTensorType, "int64": Int64TensorType}[X.dtype.name]
    initial = [(input_name, kind([None, X.shape[1]]))]
    target = {"": opts.opset, "ai.onnx.ml": ML_OPSET}
    # Probabilities as one (batch, classes) array; classifiers without a ZipMap (LinearSVC, ...) reject the
    # option by name, so they are converted without it.
    attempts = [{id(estimator): {"zipmap": False}}, None] if is_classifier(estimator) else [None]
    for options in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = skl2onnx.convert_sklearn(estimator, initial_types=initial, target_opset=target,
                                                 options=options)
            break
        except NameError as e:
            if options is None or "zipmap" not in str(e):
                raise ExportFailed(f"{label}: skl2onnx cannot convert it: {error_line(e)}") from e
        except Exception as e:
            raise ExportFailed(f"{label}: skl2onnx cannot convert it: {type(e).__name__}: {error_line(e)}") from e
    odd = [o.name for o in model.graph.output if not o.type.HasField("tensor_type")]
    if odd:
        raise ExportFailed(f"{label}: skl2onnx wrote outputs {odd} as sequences or maps, which edgepack's runtime "
                           "does not return as arrays")
    return model


def _reference(estimator: Any, X: np.ndarray, got: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The source model's own answers, keyed by the ONNX output they correspond to."""
    from sklearn.base import is_classifier

    if is_classifier(estimator):
        scores = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.decision_function
        answers = [estimator.predict(X), scores(X)]
    elif hasattr(estimator, "predict"):
        answers = [estimator.predict(X)]
    else:
        answers = [estimator.transform(X)]
    out = {}
    for name, ref in zip(got, answers):  # skl2onnx's order: label, then scores
        ref = np.asarray(ref)
        # (n,) against (n, 1): a regressor's or a binary decision function's one column
        out[name] = ref.reshape(got[name].shape) if ref.size == got[name].size else ref
    return out
