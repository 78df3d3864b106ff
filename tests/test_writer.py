"""The writer: misuse is an error, and nothing is ever half-written."""

import os

import pytest

import edgepack
from edgepack.packager.encode import encode
from edgepack.packager.writer import BundleWriter, WriterStateError

import graphs


def test_tensor_before_graph_is_refused(tmp):
    with BundleWriter(tmp / "x.edgepack") as w:
        with pytest.raises(WriterStateError):
            w.add_tensor("t", "uint8", (3,), encode(memoryview(b"abc"), "uint8"))
    assert os.listdir(tmp) == []


def test_finish_twice_is_refused(tmp):
    w = BundleWriter(tmp / "x.edgepack")
    w.add_graph(encode(memoryview(b"\x08\x08"), "uint8"))
    w.finish({}, {}, {})
    with pytest.raises(WriterStateError):
        w.finish({}, {}, {})
    assert os.listdir(tmp) == ["x.edgepack"]


def test_failure_mid_write_leaves_the_old_file(tmp, monkeypatch):
    model, _ = graphs.mlp()
    out = tmp / "m.edgepack"
    out.write_bytes(b"old contents")
    from edgepack.packager import writer

    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.BundleWriter, "add_tensor", boom)
    with pytest.raises(OSError):
        edgepack.package(model, output=out)
    assert out.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp)) == ["m.edgepack"]


def test_bundle_permissions_follow_umask(tmp):
    model, _ = graphs.mlp()
    old = os.umask(0o022)
    try:
        edgepack.package(model, output=tmp / "m.edgepack")
    finally:
        os.umask(old)
    assert (os.stat(tmp / "m.edgepack").st_mode & 0o777) == 0o644
