"""Issue 19, finding 4: the deferred hash check raced. A weight's frame was decoded and written to
onnxruntime unchecked, then decoded again *from the file* to check its hash: another process restoring
the file in between made load() return a session computing with bytes that fail their hash (22 of 100
loads in the review). Now the hash is computed on the very buffer that was written.

The race is made deterministic here: the file holds a corrupt weight while the feeder decodes it for
onnxruntime, and is restored to the good bytes right after (as the review's flipping process did)."""

import numpy as np
import pytest

import edgepack
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime import host as host_mod
from edgepack.runtime import reader as reader_mod

import graphs


@pytest.fixture(scope="module")
def weighted(tmp_path_factory):
    model, feeds = graphs.mlp(hidden=(256, 256))  # 256x256 float weights: checked after writing
    path = tmp_path_factory.mktemp("race") / "m.edgepack"
    edgepack.package(model, output=path)
    return path.read_bytes(), feeds


def test_bytes_restored_after_the_write_do_not_pass_the_check(tmp_path, weighted, monkeypatch):
    if host_mod.usable_cpus() < 2:
        pytest.skip("one CPU: every frame is checked before it is written")
    good, feeds = weighted
    path = tmp_path / "m.edgepack"
    path.write_bytes(good)
    with open_bundle(path) as b:
        big = max(b.manifest.tensors, key=lambda t: t.raw_length)
        frame = big.frames[0]
        start = b.data_start + frame.offset
    for at in range(start + frame.length - 1, start, -97):  # a byte whose flip fails the hash alone
        bad = bytearray(good)
        bad[at] ^= 0x01
        path.write_bytes(bytes(bad))
        with open_bundle(path) as b:
            problems = b.verify()
        if problems and all("SHA-256" in p for p in problems):
            break
    else:
        raise AssertionError("no byte flips to a hash mismatch alone")
    real = reader_mod.Bundle.decode_frame
    restored = []

    def decode_then_restore(self, blob, f, out, payload=None, check=True):
        real(self, blob, f, out, payload, check)
        if blob.name == big.name and not check and not restored:  # the bytes onnxruntime gets: corrupt
            with open(path, "r+b") as fh:                          # ... and the file is good again
                fh.seek(at)
                fh.write(good[at:at + 1])
            restored.append(True)

    monkeypatch.setattr(reader_mod.Bundle, "decode_frame", decode_then_restore)
    with pytest.raises(E.CorruptTensor, match="SHA-256"):
        load(path)
    assert restored  # the race happened: the weight was written unchecked, and the file repaired after
    monkeypatch.undo()
    np.testing.assert_array_equal(path.read_bytes(), good)
    load(path).run(feeds)  # the repaired file loads
