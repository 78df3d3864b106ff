"""The manifest checks of runtime/manifest.py, each shown to refuse what it exists for, and its limits tried at
the limit itself as well as one past it (issue 19: these survived a mutation test; scripts/mutation)."""

import pathlib

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import manifest as manifest_mod
from edgepack.runtime import open_bundle
from edgepack.runtime.format import ALIGNMENT, MAX_GAP, MAX_NAME_BYTES, MAX_RANK

import bundles
import prebuilt


@pytest.fixture(scope="module")
def good(cases):
    return pathlib.Path(cases[prebuilt.ERRORS_CASE].bundle).read_bytes()


def opened(tmp, data: bytes):
    path = tmp / "x.edgepack"
    path.write_bytes(data)
    with open_bundle(path) as b:
        return b.manifest, b.verify()


def relaid(data: bytes, before: int | None = None, extra: int = 0, tail: int = 0) -> bytes:
    """The bundle with `extra` zero bytes more before blob `before` (0: the graph) and `tail` after the last."""
    _, section, m, sig = bundles.parts(data)
    blobs = [m["graph"], *m["tensors"]]
    out = bytearray()
    for i, blob in enumerate(blobs):
        stored = section[blob["offset"]:blob["offset"] + blob["length"]]
        start = -(-len(out) // ALIGNMENT) * ALIGNMENT + (extra if i == before else 0)
        out.extend(bytes(start - len(out)))
        blob["offset"] = start
        out.extend(stored)
    out.extend(bytes(tail))
    m["data_length"] = len(out)
    return bundles.assemble(bytes(out), m, sig)


def test_the_good_bundle_is_laid_out_tightly(tmp, good):
    m, problems = opened(tmp, relaid(good))
    assert problems == [] and len(m.tensors) == 6


def test_an_entry_whose_length_disagrees_with_its_frames_is_refused(tmp, good):
    """64 bytes short: the blob still lies inside the data section, so only this check sees it."""
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][1].update(length=m["tensors"][1]["length"] - 64))
    stored = bundles.parts(good)[2]["tensors"][1]["length"]
    with pytest.raises(E.InvalidOffset, match=f"frames store {stored} bytes but the entry says {stored - 64}$"):
        opened(tmp, bad)


def test_a_gap_before_a_blob_is_allowed_up_to_the_limit(tmp, good):
    _, section, m, _ = bundles.parts(good)
    index = 2
    prev = [m["graph"], *m["tensors"]][index - 1]
    end = prev["offset"] + prev["length"]
    natural = -(-end // ALIGNMENT) * ALIGNMENT - end
    widest = (MAX_GAP - 1 - natural) // ALIGNMENT * ALIGNMENT  # the largest aligned gap under MAX_GAP
    m_ok, problems = opened(tmp, relaid(good, index, widest))
    assert problems == [] and m_ok.tensors[index - 1].offset - end == natural + widest
    with pytest.raises(E.InvalidOffset, match="gap of"):
        opened(tmp, relaid(good, index, widest + ALIGNMENT))


def test_trailing_bytes_in_the_data_section_are_allowed_up_to_the_limit(tmp, good):
    m, problems = opened(tmp, relaid(good, tail=MAX_GAP - 1))
    assert problems == []
    with pytest.raises(E.InvalidManifest, match=f"{MAX_GAP} bytes after its last blob"):
        opened(tmp, relaid(good, tail=MAX_GAP))


@pytest.mark.parametrize("frames", [{}, "frames", 3, None])
def test_frames_must_be_a_list(tmp, good, frames):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][0].update(frames=frames))
    with pytest.raises(E.InvalidManifest, match="frames must be a list"):
        opened(tmp, bad)


def test_the_frame_count_is_limited_at_the_limit(tmp, good, monkeypatch):
    """MAX_FRAMES (2,000,000) frames do not fit under the manifest cap; a lower limit shows the check."""
    m, _ = opened(tmp, good)
    count = max(len(b.frames) for b in (m.graph, *m.tensors))
    monkeypatch.setattr(manifest_mod, "MAX_FRAMES", count)
    opened(tmp, good)
    monkeypatch.setattr(manifest_mod, "MAX_FRAMES", count - 1)
    with pytest.raises(E.InvalidManifest, match=f"at most {count - 1} frames"):
        opened(tmp, good)


def test_raw_bytes_without_frames_are_refused(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][0].update(frames=[], length=0))
    with pytest.raises(E.InvalidManifest, match="raw bytes but no frames"):
        opened(tmp, bad)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "bool", "float8e4m3fn", "uint4", "int4"])
def test_planes_on_one_byte_and_four_bit_elements_are_refused(tmp, good, dtype):
    """A planes frame of two planes on elements of one byte (or half a byte): refused as 1-byte elements."""
    def edit(m):
        t = next(t for t in m["tensors"] if t["codec"] == "planes")
        count = t["raw_length"] if dtype not in ("uint4", "int4") else 2 * t["raw_length"]
        t.update(dtype=dtype, shape=[count])
        for f in t["frames"]:
            f["planes"] = f["planes"][:2]
    with pytest.raises(E.InvalidOffset, match="elements of 2/4/8 bytes, not 1"):
        opened(tmp, bundles.edit_manifest(good, edit))


def test_names_of_the_longest_length_are_allowed(tmp, good):
    name = "n" * MAX_NAME_BYTES
    m, _ = opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].update(name=name)))
    assert m.tensors[0].name == name
    with pytest.raises(E.InvalidManifest, match=f"at most {MAX_NAME_BYTES} bytes"):
        opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].update(name=name + "n")))
    wide = "\u00e9" * (MAX_NAME_BYTES // 2)  # counted in UTF-8 bytes, not characters
    opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].update(name=wide)))
    with pytest.raises(E.InvalidManifest, match="at most"):
        opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].update(name=wide + "n")))


def test_rank_is_allowed_up_to_the_limit(tmp, good):
    def reshape(rank):
        def edit(m):
            t = m["tensors"][0]
            t["shape"] = [1] * (rank - 1) + [t["raw_length"] // 4]
        return edit
    m, _ = opened(tmp, bundles.edit_manifest(good, reshape(MAX_RANK)))
    assert len(m.tensors[0].shape) == MAX_RANK
    with pytest.raises(E.InvalidManifest, match=f"at most {MAX_RANK} dimensions"):
        opened(tmp, bundles.edit_manifest(good, reshape(MAX_RANK + 1)))


def test_an_empty_name_is_refused(tmp, good):
    with pytest.raises(E.InvalidManifest, match="non-empty string"):
        opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].update(name="")))


def test_a_gap_before_the_graph_is_allowed_up_to_the_limit(tmp, good):
    m, problems = opened(tmp, relaid(good, 0, MAX_GAP - ALIGNMENT))
    assert problems == [] and m.graph.offset == MAX_GAP - ALIGNMENT
    with pytest.raises(E.InvalidOffset, match=f"gap of {MAX_GAP} bytes"):
        opened(tmp, relaid(good, 0, MAX_GAP))


def test_an_external_tensor_has_no_splice(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][0].update(binding="external"))
    with pytest.raises(E.InvalidManifest, match="an external tensor has no splice"):
        opened(tmp, bad)


def test_a_splice_is_used_once(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][1].update(splice=m["tensors"][0]["splice"]))
    with pytest.raises(E.InvalidOffset, match="outside the graph or reused"):
        opened(tmp, bad)


@pytest.mark.parametrize("where, match", [("tensors", "tensors is not a list"),
                                          ("tensor", r"tensors\[0\] is not an object"),
                                          ("manifest", "the manifest is not a JSON object")])
def test_containers_of_the_wrong_kind(tmp, good, where, match):
    _, section, m, _ = bundles.parts(good)
    if where == "tensors":
        data = bundles.assemble(section, dict(m, tensors={}))
    elif where == "tensor":
        data = bundles.assemble(section, dict(m, tensors=[5]))
    else:
        data = bundles.assemble(section, None, manifest_bytes=b"[]")
    with pytest.raises(E.InvalidManifest, match=match):
        opened(tmp, data)


def test_a_tensor_lacking_a_key_is_named(tmp, good):
    with pytest.raises(E.InvalidManifest, match=r"tensors\[0\] lacks dtype"):
        opened(tmp, bundles.edit_manifest(good, lambda m: m["tensors"][0].pop("dtype")))


def test_hashes_must_be_lowercase_hex(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][0].update(sha256=m["tensors"][0]["sha256"].upper()))
    with pytest.raises(E.InvalidManifest, match="lowercase hex SHA-256"):
        opened(tmp, bad)


def test_the_tensor_count_is_allowed_up_to_the_limit(tmp, good, monkeypatch):
    monkeypatch.setattr(manifest_mod, "MAX_TENSORS", 6)
    opened(tmp, good)
    monkeypatch.setattr(manifest_mod, "MAX_TENSORS", 5)
    with pytest.raises(E.LimitExceeded, match="tensor count is 6, over the limit of 5"):
        opened(tmp, good)


def test_the_total_raw_size_is_allowed_up_to_the_limit(tmp, good, monkeypatch):
    m, _ = opened(tmp, good)
    monkeypatch.setattr(manifest_mod, "MAX_TOTAL_RAW_BYTES", m.raw_bytes)
    opened(tmp, good)
    monkeypatch.setattr(manifest_mod, "MAX_TOTAL_RAW_BYTES", m.raw_bytes - 1)
    with pytest.raises(E.LimitExceeded):
        opened(tmp, good)


@pytest.mark.parametrize("where", ["target", "report"])
def test_free_form_objects_nest_up_to_the_limit(tmp, good, where):
    from edgepack.runtime.format import MAX_MANIFEST_DEPTH

    def nested(depth):
        value: object = 1
        for _ in range(depth - 1):
            value = [value]
        return value
    ok = bundles.edit_manifest(good, lambda m: m.update({where: {"deep": nested(MAX_MANIFEST_DEPTH - 1)}}))
    opened(tmp, ok)
    bad = bundles.edit_manifest(good, lambda m: m.update({where: {"deep": nested(MAX_MANIFEST_DEPTH)}}))
    with pytest.raises(E.InvalidManifest, match=f"{where} nests deeper than {MAX_MANIFEST_DEPTH - 1} levels"):
        opened(tmp, bad)


def test_a_planes_graph_is_refused(tmp, good):
    def edit(m):
        t = next(t for t in m["tensors"] if t["codec"] == "planes")
        m["graph"]["codec"] = "planes"
        m["graph"]["frames"][0].update(rotate=0, planes=t["frames"][0]["planes"][:1])
    with pytest.raises(E.InvalidOffset, match="not 1"):
        opened(tmp, bundles.edit_manifest(good, edit))


def test_a_tensor_can_be_found_by_name(tmp, good):
    m, _ = opened(tmp, good)
    assert m.tensor(m.tensors[3].name) is m.tensors[3]
    with pytest.raises(E.NoSuchTensor):
        m.tensor("no such tensor")


def test_the_totals_add_up(tmp, good):
    m, _ = opened(tmp, good)
    assert m.stored_bytes == m.graph.length + sum(t.length for t in m.tensors)
    assert m.raw_bytes == m.graph.raw_length + sum(t.raw_length for t in m.tensors)


@pytest.mark.parametrize("key", ["target", "provenance", "report"])
def test_free_form_fields_must_be_objects(tmp, good, key):
    with pytest.raises(E.InvalidManifest, match=f"{key} is not an object"):
        opened(tmp, bundles.edit_manifest(good, lambda m: m.update({key: []})))


def test_a_name_used_twice_is_refused(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][1].update(name=m["tensors"][0]["name"]))
    with pytest.raises(E.InvalidOffset, match="used by more than one tensor"):
        opened(tmp, bad)


def test_a_splice_may_be_the_end_of_the_graph(tmp, good):
    def edit(m):
        last = max(m["tensors"], key=lambda t: t["splice"])
        last["splice"] = m["graph"]["raw_length"]
    m, _ = opened(tmp, bundles.edit_manifest(good, edit))
    assert max(t.splice for t in m.tensors) == m.graph.raw_length
    with pytest.raises(E.InvalidOffset, match="outside the graph"):
        opened(tmp, bundles.edit_manifest(good, lambda m: (edit(m), max(m["tensors"], key=lambda t: t["splice"])
                                                           .update(splice=m["graph"]["raw_length"] + 1))))


def test_a_one_byte_frame_is_allowed(tmp):
    empty = {"format": "edgepack", "version": 1, "tensors": [{"name": "b", "dtype": "uint8", "shape": [1],
                                                             "binding": "external"}],
             "target": {}, "provenance": {}, "report": {}}
    m, problems = opened(tmp, bundles.build(empty, b"g", [b"\x07"], codec="raw"))
    assert problems == [] and m.tensors[0].frames[0].raw_length == 1 and m.graph.frames[0].raw_length == 1


def test_a_blob_past_the_data_section_is_refused(tmp, good):
    """The data section cut 8 bytes short of its last blob, data_length and the header agreeing on it."""
    _, section, m, sig = bundles.parts(relaid(good))
    last = m["tensors"][-1]
    assert last["offset"] + last["length"] == len(section)
    cut = bundles.assemble(section[:-8], dict(m, data_length=len(section) - 8), sig)
    with pytest.raises(E.InvalidOffset, match=f"data ends at {len(section)}, past the data section "
                                              f"\\({len(section) - 8} bytes\\)"):
        opened(tmp, cut)


def test_the_graph_size_limit_admits_a_graph_of_exactly_the_limit(tmp, good, monkeypatch):
    """MAX_GRAPH_BYTES is the largest graph allowed, not the first refused (tried with the limit lowered to
    the good bundle's graph)."""
    size = bundles.parts(good)[2]["graph"]["raw_length"]
    monkeypatch.setattr(manifest_mod, "MAX_GRAPH_BYTES", size)
    m, problems = opened(tmp, good)
    assert m.graph.raw_length == size and problems == []
    monkeypatch.setattr(manifest_mod, "MAX_GRAPH_BYTES", size - 1)
    with pytest.raises(E.LimitExceeded, match="graph size"):
        opened(tmp, good)


def test_a_checked_manifest_cannot_be_changed_afterwards(tmp, good):
    """The entries the checks passed are the ones every later read uses: the Manifest is frozen."""
    import dataclasses

    m, _ = opened(tmp, good)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.data_length = 0  # type: ignore[misc]
