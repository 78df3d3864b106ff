"""The mapped layout (docs/FORMAT.md, "Layouts"): large initializers stored raw and page-aligned, mapped by
onnxruntime from the bundle itself; small tensors and the graph coded as usual."""

import os

import graphs
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundles import edit_manifest
from edgepack.packager import package
from edgepack.runtime import load, open_bundle
from edgepack.runtime.errors import BundleError, CorruptTensor, InvalidManifest, InvalidOffset, OptionError
from edgepack.runtime.format import DATA_START
from edgepack.runtime import mapped as mapped_mod
from edgepack.runtime.mapped import initializers_message


def _plain(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _mapped(tmp, model, name="m.edgepack", **kw):
    path = tmp / name
    package(model, path, layout="mapped", **kw)
    return path


def test_mapped_bundle_runs_bit_exact_and_maps_the_large_tensors(tmp):
    model, feeds = graphs.mlp()
    path = _mapped(tmp, model)
    with open_bundle(path) as b:
        m = b.manifest
        assert m.layout == "mapped" and m.alignment == 4096
        mapped = {t.name for t in m.mapped}
        assert mapped == {"w0", "w1", "w2"}  # 32 KiB, 64 KiB, 5 KiB; the biases (<= 512 bytes) stay inline
        assert all(t.codec == "raw" and (DATA_START + t.offset) % 4096 == 0 for t in m.mapped)
        assert {t.binding for t in m.tensors if t.name not in mapped} == {"inline"}
        assert not b.verify()
    s = load(path)
    expected = _plain(model, feeds)
    got = s.run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got.values()))
    assert s.stats.mapped_bytes >= 0


def test_compressed_layout_is_unchanged_by_default(tmp):
    model, _ = graphs.mlp()
    package(model, tmp / "c.edgepack")
    with open_bundle(tmp / "c.edgepack") as b:
        assert b.manifest.layout == "compressed" and not b.manifest.mapped
        assert "layout" not in b.manifest.raw


def test_alignment_and_threshold_come_from_the_profile(tmp):
    from edgepack.runtime.profile import resolve

    base = resolve(None).to_dict()
    base["codec"].update(layout="mapped", mapped_alignment=65536, mapped_min_bytes=40000)
    model, feeds = graphs.mlp()
    package(model, tmp / "p.edgepack", target=base)
    with open_bundle(tmp / "p.edgepack") as b:
        assert b.manifest.alignment == 65536
        assert {t.name for t in b.manifest.mapped} == {"w1"}  # 64 KiB; w0 is 32 KiB
        assert (DATA_START + b.manifest.tensor("w1").offset) % 65536 == 0
    got = load(tmp / "p.edgepack").run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))


def test_onnxruntime_maps_the_tensors_it_uses_in_place(tmp):
    """The biases (Add's inputs, not prepacked) stay mapped from the bundle once the session is built."""
    from edgepack.runtime.profile import resolve

    base = resolve(None).to_dict()
    base["codec"].update(layout="mapped", mapped_min_bytes=256)
    model, feeds = graphs.mlp()
    package(model, tmp / "b.edgepack", target=base)
    with open_bundle(tmp / "b.edgepack") as b:
        assert {"b0", "b1"} <= {t.name for t in b.manifest.mapped}
    s = load(tmp / "b.edgepack")
    if os.path.exists("/proc/self/maps"):
        assert s.stats.mapped_bytes >= 4096
    got = s.run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))


def test_constants_and_subgraph_tensors_stay_inline(tmp):
    model, feeds = graphs.constant_weights()
    path = _mapped(tmp, model)
    with open_bundle(path) as b:
        inits = {t.name for t in model.graph.initializer}
        assert {t.name for t in b.manifest.mapped} <= inits
    got = load(path).run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))


@pytest.mark.parametrize("through", ["a mapping", "reads"])
def test_a_changed_mapped_byte_fails_load_and_verify(tmp, monkeypatch, through):
    if through == "a mapping":  # this model's frames are smaller than what is mapped by default
        monkeypatch.setattr(mapped_mod, "_MAP_MIN_BYTES", 1)
    if through == "reads":  # where the frame cannot be mapped, it is read instead: the same check
        def refuse(*args, **kwargs):
            raise OSError(19, "No such device")

        monkeypatch.setattr(mapped_mod.mmap, "mmap", refuse)
    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    with open_bundle(path) as b:
        w = b.manifest.tensor("w1")
    with open(path, "r+b") as f:
        f.seek(DATA_START + w.offset + 1000)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CorruptTensor, match="w1"):
        load(path)
    with open_bundle(path) as b:
        assert any("w1" in p for p in b.verify())


@pytest.mark.parametrize("defer", [True, False])
def test_every_mapped_tensor_is_checked_whatever_its_type(tmp, defer):
    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    with open_bundle(path) as b:
        w = b.manifest.tensor("w2")  # 5 KiB: checked before onnxruntime reads it
    data = bytearray(path.read_bytes())
    data[DATA_START + w.offset] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptTensor, match="w2"):
        load(path, lean=not defer)


def test_a_bundle_reached_through_a_link_loads(tmp):
    model, feeds = graphs.mlp()
    path = _mapped(tmp, model)
    (tmp / "elsewhere").mkdir()
    link = tmp / "elsewhere" / "link.edgepack"
    link.symlink_to(path)
    got = load(link).run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))


def test_a_bundle_others_may_write_is_refused(tmp):
    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    os.chmod(path, 0o666)
    with pytest.raises(BundleError, match="writable by its owner only"):
        load(path)
    os.chmod(path, 0o644)
    load(path)


def test_signed_mapped_bundle_loads_with_its_key(tmp):
    from edgepack.packager.sign import keygen, sign_bundle
    from edgepack.runtime.errors import SignatureError

    model, feeds = graphs.mlp()
    path = _mapped(tmp, model)
    pair = keygen(tmp / "k")
    sign_bundle(path, pair.private_path)
    got = load(path, public_key=pair.public_path).run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))
    other = keygen(tmp / "other")
    with pytest.raises(SignatureError):
        load(path, public_key=other.public_path)


def test_manifest_rules_for_mapped_tensors(tmp):
    model, _ = graphs.mlp()
    data = _mapped(tmp, model).read_bytes()

    def check(edit, error, match):
        bad = tmp / "bad.edgepack"
        bad.write_bytes(edit_manifest(data, edit))
        with pytest.raises(error, match=match):
            open_bundle(bad)

    def no_layout(m):
        del m["layout"]

    def other_alignment(m):
        m["layout"]["alignment"] = 8192

    def coded(m):
        next(t for t in m["tensors"] if t["binding"] == "mapped")["codec"] = "zstd"

    def moved(m):
        t = next(t for t in m["tensors"] if t["binding"] == "mapped")
        t["offset"] += 64

    def spliced(m):
        next(t for t in m["tensors"] if t["binding"] == "mapped")["splice"] = 0

    check(no_layout, InvalidManifest, "declares no mapped layout")
    check(other_alignment, InvalidManifest, "alignment must be one of")
    check(coded, InvalidManifest, "must be stored raw")
    check(moved, InvalidOffset, "not a multiple of the layout's alignment")
    check(spliced, InvalidManifest, "has no splice")

    def external(m):
        next(t for t in m["tensors"] if t["binding"] == "inline")["binding"] = "external"
        next(t for t in m["tensors"] if t["binding"] == "external").pop("splice")

    check(external, InvalidManifest, "no external tensors")


def test_graph_with_a_mapped_name_is_refused(tmp):
    """A stored graph that defines a tensor of a mapped tensor's name (protobuf would merge in a second one)."""
    from edgepack.runtime.errors import InvalidGraph

    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    data = path.read_bytes()

    def rename(m):
        t = next(t for t in m["tensors"] if t["binding"] == "inline")
        mapped = next(t for t in m["tensors"] if t["binding"] == "mapped")
        t["name"], mapped["name"] = mapped["name"], t["name"]

    bad = tmp / "bad.edgepack"
    bad.write_bytes(edit_manifest(data, rename))
    with pytest.raises(InvalidGraph):
        load(bad)


def test_initializers_message_merges_into_the_model(tmp):
    """The appended message parses, with onnx, as initializers pointing into the bundle at the manifest's
    offsets."""
    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    with open_bundle(path) as b:
        mapped = list(b.manifest.mapped)
    extra = onnx.ModelProto.FromString(initializers_message(mapped, "m.edgepack"))
    by_name = {t.name: t for t in extra.graph.initializer}
    for t in mapped:
        proto = by_name[t.name]
        assert proto.data_location == onnx.TensorProto.EXTERNAL and list(proto.dims) == list(t.shape)
        assert {e.key: e.value for e in proto.external_data} == {
            "location": "m.edgepack", "offset": str(DATA_START + t.offset), "length": str(t.raw_length)}


def test_unknown_layout_is_an_option_error(tmp):
    model, _ = graphs.mlp()
    with pytest.raises(OptionError, match="layout"):
        package(model, tmp / "x.edgepack", layout="zipped")


def test_measure_takes_an_onnx_with_external_data_as_baseline(tmp):
    """Plain onnxruntime's best layout (weights in a page-aligned external data file) as the baseline: its bytes
    count the data file, and the outputs compare bit for bit with the mapped bundle's."""
    from edgepack.runtime.measure import measure

    model, feeds = graphs.mlp()
    path = _mapped(tmp, model)
    np.savez(tmp / "feeds.npz", **feeds)
    onnx.save(model, tmp / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=1024)
    report = measure(path, tmp / "ext.onnx", runs=1, inputs=tmp / "feeds.npz")
    assert report["baseline"]["bytes"] == os.path.getsize(tmp / "ext.onnx") + os.path.getsize(tmp / "ext.bin")
    assert report["outputs_identical"]


def test_a_change_undone_while_loading_is_caught(tmp, monkeypatch):
    """A write to the file during the load that leaves every hashed byte as it was (here a reserved header
    byte, set and cleared again: onnxruntime could have read a weight in between) moves the file's ctime, and
    load() fails instead of vouching for the weights."""
    from edgepack.runtime import mapped

    model, _ = graphs.mlp()
    path = _mapped(tmp, model)
    original = mapped._Hasher.run

    def meddling_run(self):
        with open(path, "r+b") as f:
            for value in (b"\x01", b"\x00"):
                f.seek(48)
                f.write(value)
                f.flush()
                os.fsync(f.fileno())
        original(self)

    monkeypatch.setattr(mapped._Hasher, "run", meddling_run)
    with pytest.raises(BundleError, match="changed while loading"):
        load(path)
    monkeypatch.setattr(mapped._Hasher, "run", original)
    load(path)


def test_inspect_and_export_read_a_mapped_bundle(tmp):
    """A mapped tensor has no place in the stored graph (no splice): inspect lists the model's inputs without
    it, and export writes the whole model back with every initializer bit-identical (a new user's finding:
    both failed with a TypeError on sorting splices)."""
    from edgepack.packager.export import export_model, model_io
    from edgepack.packager.show import inspect_lines

    model, feeds = graphs.mlp()
    path = _mapped(tmp, model)
    io = model_io(path)
    assert [i["name"] for i in io["inputs"]] == [i.name for i in model.graph.input
                                                 if i.name not in {t.name for t in model.graph.initializer}]
    assert any(line.strip().startswith("layout      mapped") for line in inspect_lines(path))
    export_model(path, tmp / "back.onnx")
    back = onnx.load(str(tmp / "back.onnx"))
    got = {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in back.graph.initializer}
    want = {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}
    assert got == want
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), _plain(back, feeds)))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_hashing_through_a_mapping_leaves_nothing_mapped(tmp):
    """Each frame is hashed through a mapping of its own, unmapped at once: the RSS it adds is one frame's."""
    import hashlib

    path = _mapped(tmp, graphs.mlp()[0])
    with open_bundle(path) as b:
        frame = max((f for t in b.manifest.mapped for f in t.frames), key=lambda f: f.length)
        digest = hashlib.sha256()
        assert mapped_mod._hash_mapped(b, frame, digest)
        assert digest.hexdigest() == frame.sha256
        st = os.fstat(b.fileno())
        assert mapped_mod.mapped_regions(os.path.realpath(path), st) == 0


def test_an_onnx_with_external_data_is_mapped_as_the_same_model_inline(tmp):
    """onnx.load leaves data_location = DEFAULT set on every tensor it read from an external data file: such a
    tensor is mapped like the same tensor read from an .onnx with its weights inline (none was)."""
    model, feeds = graphs.mlp()
    package(model, tmp / "inline.edgepack", layout="mapped")
    onnx.save(model, tmp / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=1024)  # (makes `model` refer to ext.bin: packaged before)
    package(tmp / "ext.onnx", tmp / "ext.edgepack", layout="mapped")
    model, _ = graphs.mlp()
    with open_bundle(tmp / "ext.edgepack") as a, open_bundle(tmp / "inline.edgepack") as b:
        assert {t.name for t in a.manifest.mapped} == {t.name for t in b.manifest.mapped} == {"w0", "w1", "w2"}
    got = load(tmp / "ext.edgepack").run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))


def test_measure_counts_the_external_data_of_constants_in_the_baseline(tmp):
    """A plain .onnx may keep a Constant's value in its external data file too (onnx.save's convert_attribute),
    which onnxruntime reads: the baseline's bytes count that file (it counted the .onnx alone, a 1 KB model)."""
    from edgepack.runtime.measure import onnx_bytes

    model, feeds = graphs.constant_weights()
    onnx.save(model, tmp / "c.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="c.bin",
              size_threshold=1024, convert_attribute=True)
    assert ort.InferenceSession(str(tmp / "c.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert os.path.getsize(tmp / "c.bin") >= 32 * 16 * 4
    assert onnx_bytes(str(tmp / "c.onnx")) == os.path.getsize(tmp / "c.onnx") + os.path.getsize(tmp / "c.bin")


def test_a_mapped_layout_that_maps_nothing_says_so(tmp):
    """Weights held in Constant nodes are always coded: --layout mapped then maps no tensor, and says why."""
    model, feeds = graphs.constant_weights()
    result = package(model, tmp / "c.edgepack", layout="mapped")
    with open_bundle(tmp / "c.edgepack") as b:
        assert not b.manifest.mapped
    assert any("mapped no tensor" in w for w in result.report["warnings"])
    got = load(tmp / "c.edgepack").run(feeds)
    assert all(np.array_equal(a, b) for a, b in zip(_plain(model, feeds), got.values()))
    assert not any("mapped no tensor" in w for w in package(graphs.mlp()[0], tmp / "m.edgepack",
                                                            layout="mapped").report.get("warnings", []))
