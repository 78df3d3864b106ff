"""A bundle that lies in a codec's own fields, or whose coded bytes are damaged, gives a typed error:
InvalidOffset when the manifest cannot be right, CorruptTensor when the bytes do not decode to it."""

import numpy as np
import pytest
import zstandard

import edgepack
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.codecs import DECODERS, CodecError
from edgepack.runtime.format import Codec

import bundles
import graphs
from bundles import write

PLANES = DECODERS[Codec.PLANES]


def _model():
    """An MLP whose first weight is gaussian (planes: raw mantissa, zstd exponent) and whose second is
    rounded to sixteenths (planes: every plane zstd)."""
    from onnx import numpy_helper

    model, feeds = graphs.mlp(hidden=(256, 256))
    init = {t.name: t for t in model.graph.initializer}
    w1 = numpy_helper.to_array(init["w1"])
    init["w1"].CopyFrom(numpy_helper.from_array((np.round(w1 * 16) / 16).astype(np.float32), "w1"))
    return model, feeds


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    model, feeds = _model()
    path = tmp_path_factory.mktemp("planes") / "good.edgepack"
    edgepack.package(model, output=path, frame_bytes=64 * 1024)
    return path.read_bytes(), feeds


def tensor(manifest, name):
    return next(t for t in manifest["tensors"] if t["name"] == name)


def test_the_fixture_has_what_the_tests_need(good):
    _, _, m, _ = bundles.parts(good[0])
    w0, w1 = tensor(m, "w0"), tensor(m, "w1")
    assert w0["codec"] == w1["codec"] == Codec.PLANES and len(w1["frames"]) == 4
    assert [c for c, _ in w1["frames"][0]["planes"]] == [Codec.ZSTD] * 4
    assert [c for c, _ in tensor(m, "w1")["frames"][0]["planes"]].count(Codec.ZSTD) == 4
    assert tensor(m, "w1")["frames"][1]["rotate"] in (0, 1)


def frame(m, name="w1", i=1):
    return tensor(m, name)["frames"][i]


def set_plane(k, value):
    return lambda m: frame(m)["planes"].__setitem__(k, value)


def first_raw_plane(m):
    """The w0 frame's first raw plane index (gaussian mantissa bytes are stored raw)."""
    return next(k for k, (c, _) in enumerate(frame(m, "w0", 0)["planes"]) if c == Codec.RAW)


@pytest.mark.parametrize("edit, match", [
    (lambda m: frame(m).pop("rotate"), "rotate must be"),
    (lambda m: frame(m).update(rotate=True), "rotate must be"),
    (lambda m: frame(m).update(rotate=-1), "rotate must be"),
    (lambda m: frame(m).update(rotate=32), "rotate must be"),
    (lambda m: frame(m).update(rotate="1"), "rotate must be"),
    (lambda m: frame(m).update(rotate=1.0), "rotate must be"),
    (lambda m: frame(m).pop("planes"), "planes must list 4"),
    (lambda m: frame(m).update(planes="zstd"), "planes must list 4"),
    (lambda m: frame(m).update(planes=frame(m)["planes"][:3]), "planes must list 4"),
    (lambda m: frame(m).update(planes=frame(m)["planes"] + [["raw", 1]]), "planes must list 4"),
    (set_plane(0, "zstd"), r"planes\[0\] must be"),
    (set_plane(0, ["zstd"]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", 10, 1]), r"planes\[0\] must be"),
    (set_plane(0, ["lz4", 10]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", 0]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", -5]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", "10"]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", True]), r"planes\[0\] must be"),
    (set_plane(0, ["zstd", 10.0]), r"planes\[0\] must be"),
    (lambda m: frame(m)["planes"][0].__setitem__(1, frame(m)["planes"][0][1] + 1), "planes store"),
    (lambda m: frame(m)["planes"][0].__setitem__(0, Codec.RAW), "raw plane 0 stores"),
    (lambda m: frame(m, "w0", 0)["planes"].__setitem__(first_raw_plane(m), [Codec.ZSTD, 5]), "planes store"),
])
def test_impossible_fields_are_refused_at_open(tmp, good, edit, match):
    with pytest.raises(E.InvalidOffset, match=match):
        with open_bundle(write(tmp, bundles.edit_manifest(good[0], edit))):
            pass


def test_unknown_frame_key_is_refused(tmp, good):
    with pytest.raises(E.InvalidManifest, match="unknown keys transform"):
        open_bundle(write(tmp, bundles.edit_manifest(good[0], lambda m: frame(m).update(transform="xor"))))


def test_planes_frame_in_a_raw_tensor_is_refused(tmp, good):
    def edit(m):
        tensor(m, "w0")["codec"] = Codec.ZSTD
    with pytest.raises(E.InvalidManifest, match="unknown keys planes, rotate"):
        open_bundle(write(tmp, bundles.edit_manifest(good[0], edit)))


def test_planes_on_one_byte_elements_is_refused(tmp, good):
    def edit(m):
        m["graph"]["codec"] = Codec.PLANES
    with pytest.raises(E.InvalidOffset, match="elements of 2/4/8 bytes, not 1"):
        open_bundle(write(tmp, bundles.edit_manifest(good[0], edit)))


def test_raw_length_off_the_element_grid_is_refused(tmp, good):
    def edit(m):
        frames = tensor(m, "w1")["frames"]
        frames[0]["raw_length"] += 2
        frames[1]["raw_length"] -= 2
    with pytest.raises(E.InvalidOffset, match="not a multiple of the 4-byte element"):
        open_bundle(write(tmp, bundles.edit_manifest(good[0], edit)))


def corrupt_on_read(tmp, data, name="w1"):
    path = write(tmp, data)
    with open_bundle(path) as b:
        with pytest.raises(E.CorruptTensor, match=repr(name)):
            b.tensor(name)
        assert any(repr(name) in p for p in b.verify())
    with pytest.raises(E.CorruptTensor, match=repr(name)):
        load(path)


@pytest.mark.parametrize("edit", [
    lambda m: frame(m).update(rotate=(frame(m)["rotate"] + 1) % 32),           # plausible but wrong
    lambda m: frame(m).update(rotate=31),
    lambda m: frame(m)["planes"].reverse(),                                      # planes out of order
    lambda m: (frame(m)["planes"][0].__setitem__(1, frame(m)["planes"][0][1] + 1),   # a boundary moved,
               frame(m)["planes"][1].__setitem__(1, frame(m)["planes"][1][1] - 1)),  # the total kept
])
def test_consistent_lies_are_corrupt_tensors(tmp, good, edit):
    corrupt_on_read(tmp, bundles.edit_manifest(good[0], edit))


def test_raw_plane_called_zstd_is_a_corrupt_tensor(tmp, good):
    def edit(m):
        k = first_raw_plane(m)
        frame(m, "w0", 0)["planes"][k][0] = Codec.ZSTD
    corrupt_on_read(tmp, bundles.edit_manifest(good[0], edit), "w0")


@pytest.mark.parametrize("name, plane_codec", [("w0", Codec.RAW), ("w0", Codec.ZSTD), ("w1", Codec.ZSTD)])
def test_damaged_plane_bytes_are_corrupt_tensors(tmp, good, name, plane_codec):
    data = good[0]
    with open_bundle(write(tmp, data)) as b:
        entry = b.manifest.tensor(name)
        f = entry.frames[0]
        k = next(i for i, (c, _) in enumerate(f.params["planes"]) if c == plane_codec)
        start = f.offset + sum(length for _, length in f.params["planes"][:k])
        at = b.data_start + start + f.params["planes"][k][1] // 2
    bad = bytearray(data)
    bad[at] ^= 0x10
    corrupt_on_read(tmp, bytes(bad), name)


# --- the decoder alone, on frames the manifest checks cannot catch -------------------------------------

def planes_frame(width=4, n=64, rotate=0):
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 4, n, dtype=np.uint8).tobytes() for _ in range(width)]
    stored = [zstandard.ZstdCompressor(write_content_size=True).compress(p) for p in planes]
    frame = {"length": sum(map(len, stored)), "raw_length": n * width, "sha256": "0" * 64, "rotate": rotate,
             "planes": [[Codec.ZSTD, len(s)] for s in stored]}
    return stored, frame


def decode(stored, frame):
    assert PLANES.check(frame, len(frame["planes"])) is None
    out = bytearray(frame["raw_length"])
    PLANES.decode_into(memoryview(b"".join(stored)), frame, memoryview(out))
    return out


@pytest.mark.parametrize("width, rotate", [(4, 0), (4, 5), (2, 3), (8, 61)])
def test_decoder_alone_round_trips(width, rotate):
    """The decoded elements are the planes put back together, byte k of each element from plane k, then
    rotated right by `rotate` bits."""
    stored, frame = planes_frame(width=width, rotate=rotate)
    planes = [np.frombuffer(zstandard.ZstdDecompressor().decompress(s), np.uint8) for s in stored]
    kind = np.dtype(f"<u{width}")
    stacked = sum(p.astype(kind) << kind.type(8 * k) for k, p in enumerate(planes))
    bits = 8 * width
    expected = (stacked >> kind.type(rotate)) | (stacked << kind.type(bits - rotate)) if rotate else stacked
    decoded = np.frombuffer(decode(stored, frame), kind)
    assert decoded.tolist() == expected.astype(kind).tolist()
    assert len(set(decoded.tolist())) >= 12  # the planes differ: one put in the wrong place shows


@pytest.mark.parametrize("declared", [63, 65, 0])
def test_zstd_plane_declaring_another_size(declared):
    stored, frame = planes_frame()
    stored[2] = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(declared))
    frame["planes"][2][1] = len(stored[2])
    frame["length"] = sum(map(len, stored))
    with pytest.raises(CodecError, match="declares"):
        decode(stored, frame)


def test_zstd_plane_without_declared_size():
    stored, frame = planes_frame()
    stored[1] = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64))
    frame["planes"][1][1] = len(stored[1])
    frame["length"] = sum(map(len, stored))
    with pytest.raises(CodecError):
        decode(stored, frame)


def test_payload_shorter_than_the_planes():
    stored, frame = planes_frame()
    with pytest.raises(CodecError, match="add up"):
        PLANES.decode_into(memoryview(b"".join(stored)[:-1]), frame, memoryview(bytearray(frame["raw_length"])))


def test_raw_plane_of_the_wrong_size_when_called_directly():
    stored, frame = planes_frame()
    stored[3] = bytes(60)
    frame["planes"][3] = [Codec.RAW, 60]
    frame["length"] = sum(map(len, stored))
    with pytest.raises(CodecError, match="raw plane 3"):
        PLANES.decode_into(memoryview(b"".join(stored)), frame, memoryview(bytearray(frame["raw_length"])))


@pytest.mark.parametrize("rotate, shown", [(32, "32"), ("x" * 50, "x" * 40)])
def test_the_rotate_message_names_the_range_and_a_short_value(rotate, shown):
    _, frame = planes_frame()
    frame["rotate"] = rotate
    assert PLANES.check(frame, 4) == f"rotate must be an integer in [0, 31], got {shown}"


def test_one_element_frames_have_planes_of_one_byte():
    value = np.array([0x11223344], "<u4")
    planes = [[Codec.RAW, 1]] * 4
    frame = {"length": 4, "raw_length": 4, "sha256": "0" * 64, "rotate": 0, "planes": planes}
    assert PLANES.check(frame, 4) is None
    out = bytearray(4)
    PLANES.decode_into(memoryview(bytes([0x44, 0x33, 0x22, 0x11])), frame, memoryview(out))
    assert bytes(out) == value.tobytes()
