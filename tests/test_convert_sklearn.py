"""scikit-learn models: converted with skl2onnx, checked, packaged, and run with the source's outputs."""

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
from sklearn.datasets import load_digits, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import edgepack
from edgepack.packager.errors import ConversionMismatch
from edgepack.runtime import load
from edgepack.runtime.errors import ModelError, OptionError


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32)[:1500], y[:1500], X.astype(np.float32)[1500:], y[1500:]


def package_and_run(model, X, tmp, example=None, **options):
    path = tmp / "m.edgepack"
    edgepack.package(model, output=path, example_inputs=X[:8] if example is None else example, **options)
    session = load(path)
    return session, session.run({session.input_names[0]: X}), session.manifest.raw["provenance"]["steps"][0]["options"]


def test_random_forest(iris, tmp):
    X, y = iris
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    session, out, info = package_and_run(rf, X, tmp)
    assert session.output_names == ["label", "probabilities"]  # arrays, no ZipMap list of dicts
    assert np.array_equal(out["label"], rf.predict(X))
    np.testing.assert_allclose(out["probabilities"], rf.predict_proba(X), rtol=1e-3, atol=1e-5)
    assert info["kind"] == "sklearn" and info["zipmap"] is False and info["opset"] == 18
    assert info["input_dtype"] == "float32" and info["n_features"] == 4 and info["inputs"] == ["X"]
    assert info["check"]["exact"] == ["label"] and info["check"]["samples"] == 8
    assert 0 <= info["check"]["max_abs_diff"] <= 1e-5


def test_pipeline_scaler_logistic_regression(iris, tmp):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    _, out, info = package_and_run(pipe, X, tmp)
    assert np.array_equal(out["label"], pipe.predict(X))
    np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(X), rtol=1e-3, atol=1e-5)
    assert info["class"] == "Pipeline"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_classifier_on_digits(digits, tmp):
    X, y, X_test, y_test = digits
    mlp = MLPClassifier((32,), max_iter=200, random_state=0).fit(X / 16, y)
    _, out, _ = package_and_run(mlp, X_test / 16, tmp)
    assert np.array_equal(out["label"], mlp.predict(X_test / 16))
    np.testing.assert_allclose(out["probabilities"], mlp.predict_proba(X_test / 16), rtol=1e-3, atol=1e-5)
    assert (out["label"] == y_test).mean() > 0.85


def test_float64_and_integer_examples_set_the_input_type(iris, tmp):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    session, out, info = package_and_run(pipe, X.astype(np.float64), tmp)
    assert session.inputs[0].dtype == np.float64 and out["probabilities"].dtype == np.float64
    assert np.array_equal(out["label"], pipe.predict(X.astype(np.float64)))
    Xi = np.rint(X * 10).astype(np.int32)
    session, out, info = package_and_run(pipe, Xi.astype(np.int64), tmp, example=Xi[:8])
    assert session.inputs[0].dtype == np.int64 and info["input_dtype"] == "int64"
    assert np.array_equal(out["label"], pipe.predict(Xi))


def test_regressor_transformer_string_labels_and_no_zipmap_classifier(iris, tmp):
    X, y = iris
    reg = LinearRegression().fit(X[:, 1:], X[:, 0])
    _, out, _ = package_and_run(reg, X[:, 1:], tmp)
    np.testing.assert_allclose(out["variable"][:, 0], reg.predict(X[:, 1:]), rtol=1e-3, atol=1e-5)
    pca = PCA(2).fit(X)
    _, out, _ = package_and_run(pca, X, tmp)
    np.testing.assert_allclose(out["variable"], pca.transform(X), rtol=1e-3, atol=1e-5)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = LogisticRegression(max_iter=500).fit(X, names)
    _, out, _ = package_and_run(clf, X, tmp)
    assert list(out["label"]) == list(clf.predict(X))
    svc = LinearSVC().fit(X, y)  # no ZipMap option in skl2onnx: scores come as an array anyway
    _, out, _ = package_and_run(svc, X, tmp)
    assert np.array_equal(out["label"], svc.predict(X))
    np.testing.assert_allclose(out["probabilities"], svc.decision_function(X), rtol=1e-3, atol=1e-5)


def test_without_example_the_check_uses_drawn_rows(iris, tmp):
    X, y = iris
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    edgepack.package(rf, output=tmp / "rf.edgepack")
    info = load(tmp / "rf.edgepack").manifest.raw["provenance"]["steps"][0]["options"]
    assert info["check"]["example"] == "synthetic N(0,1)" and info["check"]["samples"] == 64
    assert info["input_dtype"] == "float32"


def test_mismatch_beyond_tolerance_gives_the_max_difference(iris, tmp):
    # A real converter discrepancy: scikit-learn's trees compare features as float32 even when given
    # float64, while the double-typed ONNX graph compares them as float64, so some samples take other
    # branches and the probabilities differ (labels happen to agree here).
    X, y = load_iris(return_X_y=True)
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    with pytest.raises(ConversionMismatch, match=r"output 'probabilities' differs from the source model by up to "
                                                  r"0\.05\b.*\|diff\| <= 1e-05 \+ 0\.001 \* \|source\|"):
        edgepack.package(rf, output=tmp / "rf.edgepack", example_inputs=X)
    assert not (tmp / "rf.edgepack").exists()


def test_bad_inputs(iris, tmp):
    X, y = iris
    with pytest.raises(ModelError, match="not fitted: call fit"):
        edgepack.package(LogisticRegression(), output=tmp / "x.edgepack", example_inputs=X)
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(OptionError, match="fitted on 4 features; the example has 3"):
        edgepack.package(rf, output=tmp / "x.edgepack", example_inputs=X[:, :3])
    with pytest.raises(OptionError, match="one 2-D array"):
        edgepack.package(rf, output=tmp / "x.edgepack", example_inputs=X[0])
    with pytest.raises(OptionError, match="output_names applies to PyTorch"):
        edgepack.package(rf, output=tmp / "x.edgepack", example_inputs=X, convert={"output_names": ["y"]})


def test_quantizing_a_model_of_ml_ops_says_why_nothing_was_quantized(iris, tmp):
    """A scikit-learn pipeline converts to ai.onnx.ml ops (Scaler, LinearClassifier) whose weights are
    attributes: onnxruntime's dynamic quantizer failed on it in its own words ("Failed to find proper ai.onnx
    domain"); edgepack says what holds the weights and what to do."""
    from edgepack.packager.errors import UnquantizedWeights

    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with pytest.raises(UnquantizedWeights, match=r"ai\.onnx\.ml ops \(.*LinearClassifier.*\) keep their weights as "
                                                 r"attributes.*without --quantize") as e:
        edgepack.package(model, output=str(tmp / "q.edgepack"), example_inputs=X[:2].astype(np.float32),
                         quantize="int8-dynamic")
    assert "--op-types" not in str(e.value)   # no op type would quantize attributes: no advice to widen them
    assert not (tmp / "q.edgepack").exists()
