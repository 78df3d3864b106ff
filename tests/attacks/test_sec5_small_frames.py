"""Security review 5: a mapped bundle whose tensors are cut into thousands of tiny frames.

Hashing each mapped frame through a mapping of its own costs a dup, an fstat, an mmap and a munmap (~50 us for
a 4 KiB frame, against ~10 us to read it), and the built-in SHA-256 chosen for each small frame was looked up
afresh each time: on CPython 3.10 and 3.11, a failed import of `_sha2` that searches sys.path (~150 us). A
48 MB bundle of 169,000 two-byte frames (its manifest padded to pass the parsing-cost bound) loaded in 9.4 s
before those changes and in 48.9 s with them. Frames smaller than one read block are now read, and the
built-in implementation is looked up once."""

import builtins
import hashlib

import numpy as np

import bundles
import graphs
from conftest import write
from edgepack.packager import package
from edgepack.runtime import digest, load, open_bundle
from edgepack.runtime import mapped as mapped_mod


def _tiny_frames(tmp, size: int = 16):
    """The MLP in the mapped layout, every mapped tensor stored as frames of `size` bytes."""
    model, feeds = graphs.mlp()
    package(model, tmp / "m.edgepack", layout="mapped")
    _, section, m, _ = bundles.parts((tmp / "m.edgepack").read_bytes())
    count = 0
    for t in m["tensors"]:
        if t.get("binding") == "mapped":
            raw = section[t["offset"]:t["offset"] + t["length"]]
            t["frames"] = [{"length": len(c), "raw_length": len(c), "sha256": hashlib.sha256(c).hexdigest()}
                           for c in (raw[i:i + size] for i in range(0, len(raw), size))]
            count += len(t["frames"])
    path = write(tmp, bundles.assemble(section, m), "tiny-frames.edgepack")
    path.chmod(0o644)
    return path, model, feeds, count


def test_tiny_mapped_frames_are_read_not_mapped_one_by_one(tmp, monkeypatch):
    path, model, feeds, count = _tiny_frames(tmp)
    assert count > 6000
    real, calls = mapped_mod.mmap.mmap, []

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(mapped_mod.mmap, "mmap", counting)
    got = load(path).run(feeds)
    assert calls == []  # none of these frames is worth a mapping of its own
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(want, got.values()))


def test_a_tiny_changed_frame_is_still_caught(tmp):
    from edgepack.runtime.errors import CorruptTensor
    from edgepack.runtime.format import DATA_START

    path, _, _, _ = _tiny_frames(tmp)
    with open_bundle(path) as b:
        w = b.manifest.tensor("w1")
    data = bytearray(path.read_bytes())
    data[DATA_START + w.offset + 4097] ^= 1
    path.write_bytes(bytes(data))
    try:
        load(path)
    except CorruptTensor as e:
        assert "w1" in str(e)
    else:
        raise AssertionError("a changed byte in a 16-byte mapped frame loaded")


def test_the_small_frame_hash_imports_nothing_per_frame(monkeypatch):
    digest.small_sha256()  # the first call may look the implementation up
    real, imports = builtins.__import__, []

    def counting(name, *args, **kwargs):
        imports.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", counting)
    for _ in range(100):
        digest.small_sha256(b"x")
    assert imports == []
    assert digest.small_sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
