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


def test_a_literal_of_more_than_a_mib_is_copied_whole(tmp_path):
    """A layer of another width: its weight (512 x 769 float32, random) has no base to be diffed against and
    is carried in the delta, over 1 MiB, read in two pieces."""
    v1, v2 = tmp_path / "v1.edgepack", tmp_path / "v2.edgepack"
    edgepack.package(graphs.mlp(d_in=64, hidden=(512, 768), d_out=10)[0], output=v1)
    edgepack.package(graphs.mlp(d_in=64, hidden=(512, 769), d_out=10)[0], output=v2)
    update = make_delta(v1, v2, tmp_path / "wide.edgedelta").path
    with open_delta(update) as d:
        assert any(op.op == F.OP_LITERAL and op.result.length > 1 << 20 for op in d.ops)
    apply_delta(v1, update, tmp_path / "out.edgepack")
    assert sha(tmp_path / "out.edgepack") == sha(v2)


def _resettled(update, tmp_path, setting):
    """The delta with every zstd setting replaced by `setting`: its zstd parts re-encode to other lengths."""
    def change(index, section):
        index["zstd"] = [dict(setting) for _ in index["zstd"]]

    hostile = tmp_path / "resettled.edgedelta"
    hostile.write_bytes(delta_edit.edit(open(update, "rb").read(), change))
    return hostile


def test_a_plane_that_encodes_to_another_length_is_a_mismatch_naming_both_zstd_versions(small, tmp_path):
    """What a device with another zstd would meet: a plane re-encoded to another length is refused, naming the
    plane, both lengths and both zstd versions, with the way out (--literal); nothing is written."""
    v1, _, update = small
    hostile = _resettled(update, tmp_path, {"level": 1})
    with open_delta(update) as d:
        op = next(op for op in d.ops if op.op == F.OP_DIFF)
        planes = op.frames[0].frame.params["planes"]
    k = next(i for i, (codec, _) in enumerate(planes) if codec == "zstd")
    with pytest.raises(F.ResultMismatch, match=(
            f"plane {k} encodes to \\d+ bytes, not {planes[k][1]} \\(this runtime's zstd is \\d+\\.\\d+\\.\\d+, the "
            "delta was made with \\d+\\.\\d+\\.\\d+\\); ask for a delta made with --literal")):
        apply_delta(v1, hostile, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()


def test_a_zstd_frame_that_encodes_to_another_length_is_a_mismatch(big, tmp_path):
    """The same for a tensor stored as plain zstd frames (no planes): the frame's whole length is compared."""
    v1, _, update = big
    hostile = _resettled(update, tmp_path, {"level": 19})
    with pytest.raises(F.ResultMismatch, match="frame at raw offset \\d+: it encodes to \\d+ bytes, not \\d+ "):
        apply_delta(v1, hostile, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()


@pytest.mark.parametrize("mode", [0o640, 0o751])
def test_the_new_bundle_keeps_the_base_files_permissions(small, tmp_path, mode):
    v1, head, update = small
    base = tmp_path / "base.edgepack"
    base.write_bytes(v1.read_bytes())
    base.chmod(mode)
    apply_delta(base, update, tmp_path / "out.edgepack")
    assert (tmp_path / "out.edgepack").stat().st_mode & 0o777 == mode
    assert sha(tmp_path / "out.edgepack") == sha(head)


def test_the_diff_work_bound_admits_exactly_the_bound(small, tmp_path, monkeypatch):
    """apply refuses diffs rebuilding more than RESULT_GROWTH x the base's decoded bytes + RESULT_SLACK: tried
    with the slack set so that the bound is exactly the work of this delta, and one byte under."""
    from edgepack.runtime import delta as delta_mod

    v1, head, update = small
    with open_delta(update) as d, open_bundle(v1) as b:
        raw = {t.name: t.raw_length for t in b.manifest.tensors}
        work = sum(raw[op.base] for op in d.ops if op.op == F.OP_DIFF)
    monkeypatch.setattr(delta_mod, "RESULT_GROWTH", 0)
    monkeypatch.setattr(delta_mod, "RESULT_SLACK", work)
    apply_delta(v1, update, tmp_path / "out.edgepack")
    assert sha(tmp_path / "out.edgepack") == sha(head)
    monkeypatch.setattr(delta_mod, "RESULT_SLACK", work - 1)
    with pytest.raises(F.InvalidDelta, match=f"its diffs rebuild {work} bytes"):
        apply_delta(v1, update, tmp_path / "no.edgepack")
    assert not (tmp_path / "no.edgepack").exists()
