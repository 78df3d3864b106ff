"""Optional extras: converters import torch or skl2onnx only when needed, and name the extra when missing.
A missing package is simulated by making it unimportable (None in sys.modules), not by uninstalling it."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

import edgepack
from edgepack.packager.errors import MissingExtra
from edgepack.runtime.errors import OptionError

import graphs


def test_packaging_onnx_imports_no_converter(tmp):
    model, _ = graphs.mlp()
    onnx.save(model, tmp / "m.onnx")
    code = (f"import sys, edgepack; edgepack.package({str(tmp / 'm.onnx')!r}, output={str(tmp / 'm.edgepack')!r}); "
            "print(' '.join(m for m in ('torch', 'sklearn', 'skl2onnx', 'onnxscript') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_sklearn_model_without_skl2onnx(monkeypatch, tmp):
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    clf = LogisticRegression().fit(X, X[:, 0] > 0)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(MissingExtra) as e:
        edgepack.package(clf, output=tmp / "m.edgepack", example_inputs=X)
    assert e.value.extra == "sklearn"
    assert str(e.value) == ("converting a scikit-learn model needs the optional package 'skl2onnx': "
                            "pip install 'edgepack[sklearn]'")


def test_torch_model_without_onnxscript(monkeypatch, tmp):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(MissingExtra, match=r"'onnxscript': pip install 'edgepack\[torch\]'"):
        edgepack.package(torch.nn.Linear(2, 2), output=tmp / "m.edgepack", example_inputs=torch.randn(2, 2))


def test_pt2_without_torch(monkeypatch, tmp):
    (tmp / "m.pt2").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtra, match=r"reading a .pt2 ExportedProgram needs the optional package 'torch': "
                                           r"pip install 'edgepack\[torch\]'"):
        edgepack.package(tmp / "m.pt2", output=tmp / "m.edgepack")


def test_joblib_without_sklearn(monkeypatch, tmp):
    (tmp / "m.joblib").write_bytes(b"never read")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtra, match=r"pip install 'edgepack\[sklearn\]'"):
        edgepack.package(tmp / "m.joblib", output=tmp / "m.edgepack", convert={"trust_pickle": True})


def test_cli_names_the_extra_in_one_line(tmp):
    (tmp / "m.joblib").write_bytes(b"never read")
    code = ("import sys; sys.modules['skl2onnx'] = None; from edgepack.cli import main; "
            f"main(['package', {str(tmp / 'm.joblib')!r}, '-o', {str(tmp / 'm.edgepack')!r}, '--trust-pickle'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr == ("edgepack: error: converting a scikit-learn model needs the optional package 'skl2onnx': "
                        "pip install 'edgepack[sklearn]'\n")


@pytest.mark.parametrize("convert, match", [
    ({"opst": 18}, r"unknown convert option\(s\) \['opst'\]"),
    ({"opset": 11}, "opset must be an integer from 13 to 21"),
    ({"opset": 18.0}, "opset must be an integer"),
    ({"rtol": -1}, "rtol must be a finite number >= 0"),
    ({"atol": float("nan")}, "atol must be a finite number >= 0"),
    ({"trust_pickle": "yes"}, "trust_pickle must be true or false, got 'yes'"),
    ({"input_names": "x"}, "input_names must be a list of distinct non-empty names"),
    ({"output_names": ["y", "y"]}, "output_names must be a list of distinct non-empty names"),
    ("opset=18", "convert options must be a ConvertOptions or a dict of its fields, got str"),
])
def test_bad_convert_options(convert, match, tmp):
    model, _ = graphs.mlp()
    with pytest.raises(OptionError, match=match):
        edgepack.package(model, output=tmp / "m.edgepack", convert=convert)


def test_convert_options_do_not_apply_to_onnx(tmp):
    model, _ = graphs.mlp()
    with pytest.raises(OptionError, match="apply to PyTorch and scikit-learn models, not to an onnx.ModelProto"):
        edgepack.package(model, output=tmp / "m.edgepack", convert={"opset": 17})
    with pytest.raises(edgepack.EdgepackError, match="cannot package a list"):
        edgepack.package([1, 2], output=tmp / "m.edgepack")


def test_hugging_face_folder_without_transformers(monkeypatch, tmp):
    """transformers runs in a child process (hf_reference.py): its absence is still found, and named, first."""
    pytest.importorskip("torch")
    import llm_models

    folder = llm_models.random_llama(str(tmp / "llama"))
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtra, match=r"'transformers': pip install 'edgepack\[llm\]'"):
        edgepack.package(folder, output=tmp / "m.edgepack")
    assert not (tmp / "m.edgepack").exists()


def test_transformers_failing_on_a_folder_is_one_line_export_failure(tmp):
    """The reference model fails in its child process: the packager reports transformers' last line, not a
    traceback, as an ExportFailed."""
    pytest.importorskip("transformers")
    from edgepack.packager.convert.hf_reference import reference_logits
    from edgepack.packager.errors import ExportFailed

    (tmp / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ExportFailed) as e:
        reference_logits(str(tmp), np.zeros((1, 4), np.int64))
    message = str(e.value)
    assert "transformers could not run the model" in message and "Traceback" not in message
    assert "\n" not in message
