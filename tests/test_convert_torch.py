"""PyTorch models: exported to ONNX, checked, packaged, and run by the runtime with the source's outputs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sklearn.datasets import load_digits  # noqa: E402

import edgepack  # noqa: E402
from edgepack.runtime import load  # noqa: E402
from edgepack.packager.errors import ExportFailed  # noqa: E402
from edgepack.runtime.errors import OptionError  # noqa: E402

from torch_models import TinyTransformer, train_digits_cnn  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    return X[:1500], torch.tensor(y[:1500]), X[1500:], y[1500:]


@pytest.fixture(scope="module")
def trained_cnn(digits):
    X, y, _, _ = digits
    return train_digits_cnn(X, y)  # left in training mode on purpose: packaging must export it in eval mode


def _provenance_import(path):
    return load(path).manifest.raw["provenance"]["steps"][0]["options"]


def test_cnn_matches_torch_at_any_batch(trained_cnn, digits, tmp):
    _, _, X_test, y_test = digits
    edgepack.package(trained_cnn, output=tmp / "cnn.edgepack", example_inputs=(X_test[:4],))
    assert trained_cnn.training, "the caller's train/eval mode is restored"
    trained_cnn.eval()
    session = load(tmp / "cnn.edgepack")
    assert [(i.name, i.shape) for i in session.inputs] == [("image", ("batch", 1, 8, 8))]
    assert session.output_names == ["output"]
    with torch.no_grad():
        expected = trained_cnn(X_test).numpy()
    got = session.run({"image": X_test.numpy()})["output"]  # 297 images: another batch than the example's 4
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    assert (got.argmax(1) == y_test).mean() > 0.85  # trained weights, real data
    one = session.run({"image": X_test[:1].numpy()})["output"]
    np.testing.assert_allclose(one, expected[:1], rtol=1e-3, atol=1e-5)
    info = _provenance_import(tmp / "cnn.edgepack")
    assert info["kind"] == "torch" and info["exporter"] == "torch.onnx.export(dynamo=True)"
    assert info["opset"] == 18 and info["dynamic_batch"] is True
    assert info["check"]["samples"] == 4 and 0 <= info["check"]["max_abs_diff"] <= 1e-4
    assert info["check"]["rtol"] == 1e-3 and info["check"]["atol"] == 1e-5


def test_transformer_matches_torch(tmp):
    torch.manual_seed(1)
    model = TinyTransformer()
    ids = torch.randint(0, 50, (2, 16))
    edgepack.package(model, output=tmp / "tr.edgepack", example_inputs={"ids": ids},  # keyword inputs
                     convert={"output_names": ["logits"]})
    session = load(tmp / "tr.edgepack")
    assert session.inputs[0].name == "ids" and session.inputs[0].dtype == np.int64
    batch = torch.randint(0, 50, (7, 16))
    with torch.no_grad():
        expected = model.eval()(batch).numpy()
    got = session.run({"ids": batch.numpy()})["logits"]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_exported_program_object(tmp):
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)).eval()
    program = torch.export.export(net, (torch.randn(3, 6),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    edgepack.package(program, output=tmp / "ep.edgepack")
    x = torch.randn(5, 6)
    got = load(tmp / "ep.edgepack").run({"input": x.numpy()})["output"]
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-3, atol=1e-5)
    info = _provenance_import(tmp / "ep.edgepack")
    assert info["format"] == "ExportedProgram" and info["dynamic_batch"] is True


def test_static_exported_program_is_recorded_as_such(tmp):
    net = torch.nn.Sequential(torch.nn.Linear(6, 2)).eval()
    program = torch.export.export(net, (torch.randn(3, 6),))  # no dynamic_shapes: batch fixed at 3
    edgepack.package(program, output=tmp / "ep.edgepack")
    session = load(tmp / "ep.edgepack")
    assert session.inputs[0].shape == (3, 6)
    assert _provenance_import(tmp / "ep.edgepack")["dynamic_batch"] is False
    with pytest.raises(OptionError, match="keeps the shapes and input names it was exported with"):
        edgepack.package(program, output=tmp / "ep.edgepack", convert={"input_names": ["x"]})


class DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # Python control flow on a tensor value: torch.export refuses it
            return x * 2
        return x - 1


def test_export_failure_is_one_clear_error(tmp):
    with pytest.raises(ExportFailed) as e:
        edgepack.package(DataDependent(), output=tmp / "bad.edgepack", example_inputs=torch.randn(3, 4))
    message = str(e.value)
    assert message.startswith("DataDependent: torch.onnx.export(dynamo=True) failed")
    assert "if x.sum() > 0" in message and "torch.cond" in message
    assert "\n" not in message and len(message) < 1200
    assert not (tmp / "bad.edgepack").exists()


def test_module_needs_example_inputs(tmp):
    with pytest.raises(OptionError, match="needs example_inputs"):
        edgepack.package(torch.nn.Linear(2, 2), output=tmp / "x.edgepack")


def test_model_failing_on_its_example(tmp):
    with pytest.raises(edgepack.EdgepackError, match="fails on the example inputs: RuntimeError"):
        edgepack.package(torch.nn.Linear(3, 2), output=tmp / "x.edgepack", example_inputs=torch.randn(2, 5))


class ScaledByMask(torch.nn.Module):
    def forward(self, x, mask):  # mask has no batch axis
        return x * mask


def test_input_without_batch_axis_says_how_to_export_it(tmp):
    x, mask = torch.randn(3, 4), torch.ones(4)
    with pytest.raises(ExportFailed, match=r"mask.*dynamic_batch': False"):
        edgepack.package(ScaledByMask(), output=tmp / "m.edgepack", example_inputs=(x, mask))
    edgepack.package(ScaledByMask(), output=tmp / "m.edgepack", example_inputs=(x, mask),
                     convert={"dynamic_batch": False})
    session = load(tmp / "m.edgepack")
    assert [i.shape for i in session.inputs] == [(3, 4), (4,)]
    assert np.array_equal(session.run({"x": x.numpy(), "mask": mask.numpy()})["output"], x.numpy())
    assert _provenance_import(tmp / "m.edgepack")["dynamic_batch"] is False
