"""Model files through the CLI: .pt2 ExportedPrograms, and scikit-learn .joblib/.pkl only when trusted."""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")
pytest.importorskip("skl2onnx")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

import edgepack  # noqa: E402
from edgepack.runtime import load  # noqa: E402
from edgepack.packager.errors import UntrustedPickle  # noqa: E402
from edgepack.runtime.errors import ModelError  # noqa: E402

from payloads import RunsCode  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))


def cli(*args):
    env = {**os.environ, "PYTHONPATH": TESTS}  # so a trusted pickle can find tests/payloads.py
    return subprocess.run([sys.executable, "-m", "edgepack.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 5)).eval()


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt2")
    net = _net()
    x = torch.randn(3, 1, 8, 8)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, d / "net.pt2")
    return d, net


def test_pt2_through_the_cli(pt2):
    d, net = pt2
    r = cli("package", d / "net.pt2", "-o", d / "net.edgepack")
    assert r.returncode == 0, r.stderr
    assert "checked the ONNX conversion on 3 samples: max |diff|" in r.stdout
    assert r.stderr == ""  # the exporter's own chatter is kept off the terminal
    x = torch.randn(6, 1, 8, 8)
    session = load(d / "net.edgepack")
    np.testing.assert_allclose(session.run({"input": x.numpy()})["output"], net(x).detach().numpy(),
                               rtol=1e-3, atol=1e-5)
    prov = session.manifest.raw["provenance"]
    assert prov["source"]["name"] == "net.pt2" and prov["source"]["kind"] == "torch"
    assert prov["source"]["bytes"] == os.path.getsize(d / "net.pt2")
    assert prov["steps"][0]["options"]["format"] == "ExportedProgram"


def _with_sample_inputs(src, dst, payload):
    """Copy a .pt2 archive, replacing its pickled example inputs with `payload` (saved by torch.save)."""
    import io

    buf = io.BytesIO()
    torch.save(payload, buf)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = buf.getvalue() if item.filename.endswith("sample_inputs/model.pt") else zin.read(item)
            zout.writestr(item, data)


def test_pt2_that_would_run_code_needs_trust(pt2, tmp):
    d, net = pt2
    marker = tmp / "code-ran"
    example = ((torch.randn(2, 1, 8, 8),), {})
    _with_sample_inputs(d / "net.pt2", tmp / "evil.pt2", RunsCode(marker, example))
    with pytest.raises(UntrustedPickle, match="runs any code the file contains; pass --trust-pickle"):
        edgepack.package(tmp / "evil.pt2", output=tmp / "evil.edgepack")
    assert not marker.exists() and not (tmp / "evil.edgepack").exists()
    assert torch.load is torch.serialization.load  # the guard put torch back as it was
    edgepack.package(tmp / "evil.pt2", output=tmp / "evil.edgepack", convert={"trust_pickle": True})
    assert marker.exists()  # trusted: torch ran the file's code, which is what the refusal warned of
    x = torch.randn(4, 1, 8, 8)
    np.testing.assert_allclose(load(tmp / "evil.edgepack").run({"input": x.numpy()})["output"],
                               net(x).detach().numpy(), rtol=1e-3, atol=1e-5)


def test_not_a_pt2(tmp):
    (tmp / "junk.pt2").write_bytes(b"not a zip archive")
    with pytest.raises(ModelError, match="not a .pt2 file torch.export.load can read"):
        edgepack.package(tmp / "junk.pt2", output=tmp / "j.edgepack")
    r = cli("package", tmp / "weights.pth", "-o", tmp / "w.edgepack")
    assert r.returncode == 1 and "torch.export.save" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    d = tmp_path_factory.mktemp("sk")
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    np.savez(d / "example.npz", X=X[:20], labels=y[:20])
    return d, rf, X


@pytest.mark.parametrize("suffix, dump", [(".joblib", joblib.dump),
                                          (".pkl", lambda obj, p: pickle.dump(obj, open(p, "wb")))])
def test_pickled_model_refused_without_trust(forest, tmp, suffix, dump):
    d, rf, X = forest
    marker = tmp / "code-ran"
    path = tmp / f"model{suffix}"
    dump(RunsCode(marker, rf), path)
    r = cli("package", path, "-o", tmp / "m.edgepack")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "runs any code it contains; pass --trust-pickle" in r.stderr
    assert not marker.exists() and not (tmp / "m.edgepack").exists()
    r = cli("package", path, "-o", tmp / "m.edgepack", "--trust-pickle", "--example-inputs", d / "example.npz")
    assert r.returncode == 0, r.stderr
    assert marker.exists()
    assert "checked the ONNX conversion on 20 samples" in r.stdout and "label identical" in r.stdout
    out = load(tmp / "m.edgepack").run({"X": X})
    assert np.array_equal(out["label"], rf.predict(X))
    np.testing.assert_allclose(out["probabilities"], rf.predict_proba(X), rtol=1e-3, atol=1e-5)


def test_joblib_without_example_uses_n_features_in(forest, tmp):
    d, rf, X = forest
    joblib.dump(rf, tmp / "rf.joblib")
    r = cli("package", tmp / "rf.joblib", "-o", tmp / "rf.edgepack", "--trust-pickle")
    assert r.returncode == 0, r.stderr
    info = json.loads(cli("inspect", tmp / "rf.edgepack", "--json").stdout)["manifest"]["provenance"]
    assert info["source"]["name"] == "rf.joblib" and info["steps"][0]["options"]["check"]["samples"] == 64
    assert np.array_equal(load(tmp / "rf.edgepack").run({"X": X})["label"], rf.predict(X))


def test_pickle_of_something_else(tmp):
    joblib.dump({"weights": [1, 2]}, tmp / "d.joblib")
    r = cli("package", tmp / "d.joblib", "-o", tmp / "d.edgepack", "--trust-pickle")
    assert r.returncode == 1 and "holds a dict, not a scikit-learn estimator" in r.stderr
