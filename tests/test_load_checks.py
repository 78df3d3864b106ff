"""When load() checks each frame's hash, and how the model stream reaches onnxruntime.

Weights are hashed right after they are written, on the very buffer onnxruntime was given (never read
from the file a second time); everything else, and every byte of a bundle loaded with a public key, is checked
before onnxruntime reads it. Either way load() returns no session built from a corrupt byte."""

import os
import threading

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.packager.sign import keygen, sign_bundle
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime import host as host_mod
from edgepack.runtime import reader as reader_mod
from edgepack.runtime import feeder as feeder_mod
from edgepack.runtime import session as session_mod



def _model():
    """A 256x256 float weight (256 KiB: deferrable), a small bias, and an int64 shape tensor (never deferred)."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array([-1, 16, 16], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Reshape", ["a", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "checks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"x": rng.standard_normal((2, 256)).astype(np.float32)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    model, feeds = _model()
    folder = tmp_path_factory.mktemp("checks")
    edgepack.package(model, output=folder / "m.edgepack")
    return (folder / "m.edgepack").read_bytes(), feeds, model


def _flip_in(tmp, data, name, name_of_file="x.edgepack"):
    """The bundle with one stored byte of tensor `name` flipped (a hash mismatch, not a decode error: the
    flipped byte is in a raw plane or a literal)."""
    path = tmp / name_of_file
    path.write_bytes(data)
    with open_bundle(path) as b:
        t = next(t for t in b.manifest.tensors if t.name == name)
        frame = t.frames[0]
        start = b.data_start + frame.offset
    for at in range(start + frame.length - 1, start, -97):  # from the end: the low byte planes, stored raw
        bad = bytearray(data)
        bad[at] ^= 0x01
        path.write_bytes(bytes(bad))
        with open_bundle(path) as b:
            problems = b.verify()
        if problems and all("SHA-256" in p for p in problems):
            return path
    raise AssertionError(f"no byte of {name!r} flips to a hash mismatch alone")


def test_weights_are_deferred_and_shapes_are_not(built, tmp_path):
    data, _, _ = built
    path = tmp_path / "m.edgepack"
    path.write_bytes(data)
    with open_bundle(path) as b:
        kinds = {t.name: feeder_mod.deferrable(t) for t in b.manifest.tensors}
    assert kinds == {"w": True, "b": False, "shape": False}


def test_a_corrupt_weight_checked_late_still_fails_the_load(built, tmp_path, monkeypatch):
    data, feeds, _ = built
    if host_mod.usable_cpus() < 2:
        pytest.skip("one CPU: every frame is checked before it is written")
    path = _flip_in(tmp_path, data, "w")
    checked = _checks_while_writing(monkeypatch)
    with pytest.raises(E.CorruptTensor, match="'w'.*SHA-256"):
        load(path)
    # w was decoded once, unchecked, and the hash of the buffer written to onnxruntime found the flip
    assert [c for n, c in checked if n == "w"] == [False] * len(_frames(path, "w"))


def test_a_corrupt_small_tensor_is_caught_before_onnxruntime_reads_it(built, tmp_path):
    data, _, _ = built
    path = _flip_in(tmp_path, data, "b")
    with pytest.raises(E.CorruptTensor, match="'b'"):
        load(path)


def _checks_while_writing(monkeypatch):
    """Record, for every frame the feeder writes, whether its hash was checked before the write."""
    checked = []
    real = reader_mod.Bundle.decode_frame

    def spy(self, blob, frame, out, payload=None, check=True):
        if threading.current_thread().name != "MainThread":
            checked.append((blob.name, check))
        return real(self, blob, frame, out, payload, check)

    monkeypatch.setattr(reader_mod.Bundle, "decode_frame", spy)
    return checked


def test_every_byte_of_a_signed_bundle_is_checked_before_onnxruntime_reads_it(built, tmp_path, monkeypatch):
    data, feeds, model = built
    keys = keygen(tmp_path / "k.key")
    path = tmp_path / "s.edgepack"
    path.write_bytes(data)
    sign_bundle(path, keys.private_path)
    checked = _checks_while_writing(monkeypatch)
    got = load(path, public_key=keys.public_path).run(feeds)["y"]
    assert checked and all(check for _, check in checked)
    assert {name for name, _ in checked} >= {"w", "b", "shape"}
    np.testing.assert_array_equal(got, _plain(model, feeds))


def test_unsigned_weights_are_written_first_and_checked_while_the_session_is_built(built, tmp_path, monkeypatch):
    data, feeds, model = built
    path = tmp_path / "m.edgepack"
    path.write_bytes(data)
    checked = _checks_while_writing(monkeypatch)
    got = load(path).run(feeds)["y"]
    if host_mod.usable_cpus() < 2:
        pytest.skip("one CPU: every frame is checked before it is written")
    # each frame of w: decoded once, written, then hashed in memory (no second decode); the rest checked once
    frames = len(_frames(path, "w"))
    assert [c for n, c in checked if n == "w"] == [False] * frames
    assert all(c for n, c in checked if n != "w")
    np.testing.assert_array_equal(got, _plain(model, feeds))


def test_one_cpu_checks_everything_before_writing(built, tmp_path, monkeypatch):
    data, _, _ = built
    monkeypatch.setattr(session_mod, "usable_cpus", lambda: 1)
    path = _flip_in(tmp_path, data, "w")
    checked = _checks_while_writing(monkeypatch)
    with pytest.raises(E.CorruptTensor, match="'w'"):
        load(path)
    assert checked and all(c for _, c in checked)


def _frames(path, name):
    with open_bundle(path) as b:
        return next(t for t in b.manifest.tensors if t.name == name).frames


def _plain(model, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


# --- the paced pipe ------------------------------------------------------------------------------------

def _slow_reader(fd, out, block=8192, stop_after=None):
    """Read `fd` in `block`-byte reads, as onnxruntime reads a FIFO, into `out`; close after `stop_after`."""
    try:
        while True:
            chunk = os.read(fd, block)
            if not chunk:
                return
            out.extend(chunk)
            if stop_after is not None and len(out) >= stop_after:
                return
    finally:
        os.close(fd)


def test_the_paced_pipe_delivers_every_byte_in_order():
    r, w = os.pipe()
    pipe = feeder_mod.Pipe(w)
    data = np.random.default_rng(0).integers(0, 256, 5 * 2 ** 20 + 12345, dtype=np.uint8).tobytes()
    got = bytearray()
    t = threading.Thread(target=_slow_reader, args=(r, got))
    t.start()
    view = memoryview(data)
    for i in range(0, len(data), 700_001):  # pieces larger and smaller than the pipe
        pipe.write(view[i:i + 700_001])
    os.close(w)
    t.join(30)
    assert bytes(got) == data
    if pipe.capacity:  # Linux: grown, and written in pieces of at most half of it
        assert pipe.capacity >= 64 * 1024 and pipe.piece <= pipe.capacity // 2


def test_the_paced_pipe_stops_when_the_reader_goes_away():
    r, w = os.pipe()
    pipe = feeder_mod.Pipe(w)
    got = bytearray()
    t = threading.Thread(target=_slow_reader, args=(r, got), kwargs={"stop_after": 100_000})
    t.start()
    done = threading.Event()
    errors = []

    def write():
        try:
            pipe.write(memoryview(bytes(20 * 2 ** 20)))
        except BrokenPipeError as e:
            errors.append(e)
        finally:
            done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(30), "the writer kept waiting for a reader that had gone"
    os.close(w)
    t.join(30)
    assert len(errors) == 1
