"""apply_delta at its edges (issue 19's mutation test of runtime/delta.py): a copied blob of more than the
1 MiB apply reads at a time, a zstd part that no setting the delta lists reproduces (carried in the delta),
a signed result whose data section ends in padding, the memory check before a difference is decoded, and a
difference that does not decode. Each rebuilt bundle is compared with the real one byte for byte."""

import hashlib

import pytest
from onnx import numpy_helper

import edgepack
from edgepack.packager.delta import make_delta
from edgepack.packager.sign import keygen, sign_bundle
from edgepack.runtime import apply_delta, open_bundle, open_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime import host
from edgepack.runtime.delta import zstd_compressor
from edgepack.runtime.errors import TooLargeForDevice

import bundles
import delta_edit
import deltas
import graphs


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(v1 path, head path, delta path): the last layer retrained (deltas.versions)."""
    folder = tmp_path_factory.mktemp("small")
    paths, _ = deltas.versions(folder, hidden=(64, 64))
    return paths["v1"], paths["head"], make_delta(paths["v1"], paths["head"], folder / "head.edgedelta").path


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(v1, v2, delta): w1 (512 x 768 float32, random: over 1 MiB stored) unchanged, so copied; four
    elements of w0 changed, and v2's w0 stored as eight zstd frames, the first at level 22, which no setting
    a delta lists (levels 1 to 19, order0) reproduces."""
    folder = tmp_path_factory.mktemp("big")
    model, _ = graphs.mlp(d_in=64, hidden=(512, 768), d_out=10)
    v1, plain = folder / "v1.edgepack", folder / "plain.edgepack"
    edgepack.package(model, output=v1)
    w0 = next(t for t in model.graph.initializer if t.name == "w0")
    changed = numpy_helper.to_array(w0).copy()
    changed[0, :4] += 1.0
    w0.CopyFrom(numpy_helper.from_array(changed, "w0"))
    edgepack.package(model, output=plain)
    data = plain.read_bytes()
    _, _, manifest, _ = bundles.parts(data)
    index = 1 + next(i for i, t in enumerate(manifest["tensors"]) if t["name"] == "w0")
    raw = changed.tobytes()
    step = len(raw) // 8
    frames = []
    for k, at in enumerate(range(0, len(raw), step)):
        chunk = raw[at:at + step]
        compressor = zstd_compressor({"level": 22 if k == 0 else 3})
        frames.append((compressor.compress(chunk), len(chunk), hashlib.sha256(chunk).hexdigest()))
    v2 = bundles.write(folder, bundles.with_frames(data, index, frames))
    with open_bundle(v2) as b:
        assert b.verify() == []
    return v1, v2, make_delta(v1, v2, folder / "big.edgedelta", check=False).path  # the tests apply it


def test_a_copied_blob_of_more_than_a_mib_is_copied_whole(big, tmp_path):
    v1, v2, update = big
    with open_delta(update) as d:
        w1 = next(op for op in d.ops if op.result.name == "w1")
    assert w1.op == F.OP_COPY and w1.result.length > 1 << 20  # read in two pieces, the second from 1 MiB on
    apply_delta(v1, update, tmp_path / "out.edgepack")
    assert sha(tmp_path / "out.edgepack") == sha(v2)


def test_a_zstd_part_no_setting_reproduces_is_carried_in_the_delta(big, tmp_path):
    v1, v2, update = big
    with open_delta(update) as d:
        w0 = next(op for op in d.ops if op.result.name == "w0")
    assert w0.op == F.OP_DIFF
    settings = [p.setting for f in w0.frames for p in f.parts]
    assert settings[0] is None and all(s is not None for s in settings[1:]), settings
    apply_delta(v1, update, tmp_path / "out.edgepack")
    assert sha(tmp_path / "out.edgepack") == sha(v2)


def test_a_signed_result_with_padding_after_its_last_blob_verifies(small, tmp_path):
    """The signature's data digest covers the whole data section, the zero bytes after the last blob too."""
    v1, head, _ = small
    _, section, manifest, _ = bundles.parts(head.read_bytes())
    manifest["data_length"] += 16
    padded = bundles.write(tmp_path, bundles.assemble(section + bytes(16), manifest))
    keys = keygen(tmp_path / "k.key")
    sign_bundle(padded, keys.private_path)
    update = make_delta(v1, padded, tmp_path / "u.edgedelta").path
    out = tmp_path / "out.edgepack"
    apply_delta(v1, update, out, public_key=keys.public_path)
    assert sha(out) == sha(padded)
    with open_bundle(out, public_key=keys.public_path) as b:
        assert b.verify() == []


def test_apply_needs_memory_for_twice_the_largest_tensor_it_differences(small, tmp_path, monkeypatch):
    """The base tensor a difference is taken against, and the rebuilt one: refused before anything is
    written when the machine has one byte less than twice the largest."""
    v1, head, update = small
    with open_delta(update) as d, open_bundle(v1) as b:
        raw = {t.name: t.raw_length for t in b.manifest.tensors}
        largest = max(raw[op.base] for op in d.ops if op.op == F.OP_DIFF)
    monkeypatch.setattr(host, "physical_memory", lambda: 2 * largest - 1)
    with pytest.raises(TooLargeForDevice):
        apply_delta(v1, update, tmp_path / "no.edgepack")
    assert not (tmp_path / "no.edgepack").exists()
    monkeypatch.setattr(host, "physical_memory", lambda: 2 * largest)
    apply_delta(v1, update, tmp_path / "out.edgepack")
    assert sha(tmp_path / "out.edgepack") == sha(head)


def test_a_difference_that_does_not_decode_is_corrupt(small, tmp_path):
    """A difference whose first zstd frame (the whole frame's, or its first zstd plane's) has its magic
    zeroed, the index resealed: refused as such, naming the tensor and the frame, and nothing written."""
    v1, _, update = small
    with open_delta(update) as d:
        op = next(op for op in d.ops if op.op == F.OP_DIFF)
        frame = op.frames[0]
    planes = frame.params.get("planes", [["zstd", 0]])
    at = frame.offset + sum(length for _, length in planes[:[c for c, _ in planes].index("zstd")])

    def zero_magic(index, section):
        assert section[at:at + 4] == b"\x28\xb5\x2f\xfd"  # a zstd frame's magic
        section[at:at + 4] = bytes(4)

    hostile = tmp_path / "bad.edgedelta"
    hostile.write_bytes(delta_edit.edit(open(update, "rb").read(), zero_magic))
    where = f"tensor {op.result.name!r}, frame at raw offset {frame.frame.raw_offset}: the difference does not decode"
    with pytest.raises(F.CorruptDelta, match=where):
        apply_delta(v1, hostile, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()
