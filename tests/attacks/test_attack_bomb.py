"""Decompression bombs: zstd frames whose header lies about their size, or that hold more than the
tensor's raw length, and manifests that declare more than the machine has. Each is refused before the
memory it asks for is touched."""

import hashlib

import pytest
import zstandard

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.host import physical_memory

import bundles
from conftest import peak_mb_refusing, write

FRAME = 16 * 2 ** 20  # the largest raw frame the format allows
BOMB = zstandard.ZstdCompressor(level=3).compress(bytes(FRAME))  # 16 MiB of zeros in about 500 bytes


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_tensor(data: bytes):
    """(index of the first tensor as a blob, its raw bytes) of a bundle."""
    _, _, m, _ = bundles.parts(data)
    t = m["tensors"][0]
    return 1, t["raw_length"]


def _raw(tmp, data, name):
    with open_bundle(write(tmp, data, "src.edgepack")) as b:
        return bytes(b.tensor(name).tobytes())


@pytest.mark.parametrize("how", ["holds more", "declares more", "declares nothing", "stops short"])
def test_a_zstd_frame_that_lies_about_its_size_is_refused(tmp, mlp_bundle, how):
    data, _ = mlp_bundle
    _, _, m, _ = bundles.parts(data)
    name, raw_length = m["tensors"][0]["name"], m["tensors"][0]["raw_length"]
    raw = _raw(tmp, data, name)
    c = zstandard.ZstdCompressor(write_content_size=True)
    payload = {
        # the header says raw_length, the stream then runs on for a MiB more
        "holds more": bundles.zstd_declaring(c.compress(raw + bytes(2 ** 20)), raw_length),
        # the header asks for a gigabyte; the manifest says raw_length
        "declares more": bundles.zstd_declaring(c.compress(raw), 2 ** 30),
        "declares nothing": zstandard.ZstdCompressor(write_content_size=False).compress(raw),
        "stops short": bundles.zstd_declaring(c.compress(raw[:raw_length // 2]), raw_length),
    }[how]
    bad = write(tmp, bundles.with_frames(data, 1, [(payload, raw_length, _sha(raw))]))
    with pytest.raises(E.CorruptTensor, match=repr(name)):
        load(bad)
    with open_bundle(bad) as b:
        with pytest.raises(E.CorruptTensor, match="zstd"):
            b.tensor(name)
        assert len(b.verify()) == 1


def test_a_declared_gigabyte_graph_costs_a_few_frames(tmp, mlp_bundle):
    """64 frames of 16 MiB that decode (500 bytes each) but fail their hash: decoding stops at the first
    failure, and buffers are mapped lazily, so memory stays near a plain load's. (Under the untrusted
    defaults load() refuses it before decoding anything, from the manifest: LoadLimits.max_graph_bytes; this
    checks the decoder itself, as a signed bundle's load would meet it.)"""
    data, _ = mlp_bundle
    frames = [(BOMB, FRAME, _sha(b"not these bytes"))] * 64
    path = write(tmp, bundles.with_frames(data, 0, frames))
    assert path.stat().st_size < 100_000
    peak = peak_mb_refusing(f"rt.load({str(path)!r}, limits=rt.TRUSTED)", "CorruptTensor")
    assert peak < 250, f"peak RSS {peak:.0f} MB for a bundle declaring a 1 GiB graph"


def test_a_bundle_larger_than_this_machine_is_refused_before_decoding(tmp, mlp_bundle):
    memory = physical_memory()
    frames = memory // FRAME + 1
    data, _ = mlp_bundle
    bomb = bundles.with_frames(data, 1, [(BOMB, FRAME, _sha(bytes(FRAME)))] * frames)
    bomb = bundles.edit_manifest(bomb, lambda m: m["tensors"][0].update(shape=[frames * FRAME // 4]))
    path = write(tmp, bomb)
    assert path.stat().st_size < 5_000_000
    with pytest.raises(E.TooLargeForDevice, match="more than the"):
        load(path)
    with open_bundle(path) as b:
        with pytest.raises(E.TooLargeForDevice):
            b.tensor(b.manifest.tensors[0].name)
