"""Helpers to take a valid bundle apart and put it back together with one thing wrong."""

import json

import zstandard

from edgepack.runtime.format import DATA_START, DTYPES, FLAG_MANIFEST_ZSTD, HEADER, HEADER_SIZE, MAGIC, VERSION


def parts(data: bytes):
    """(header fields, data section, manifest dict, signature) of a bundle's bytes."""
    magic, version, flags, m_off, m_len, s_len = HEADER.unpack(data[:HEADER_SIZE])
    stored = data[m_off:m_off + m_len]
    if flags & FLAG_MANIFEST_ZSTD:
        stored = zstandard.ZstdDecompressor().decompress(stored)
    manifest = json.loads(stored)
    return (magic, version, flags), data[DATA_START:m_off], manifest, data[m_off + m_len:m_off + m_len + s_len]


def assemble(data_section: bytes, manifest, signature: bytes = b"", magic=MAGIC, version=VERSION, flags=0,
             manifest_bytes: bytes | None = None) -> bytes:
    """A bundle with the manifest stored as plain JSON (flags=0), unless other bytes and flags are given."""
    m = manifest_bytes if manifest_bytes is not None else json.dumps(manifest, separators=(",", ":")).encode()
    header = HEADER.pack(magic, version, flags, DATA_START + len(data_section), len(m), len(signature))
    return header + bytes(DATA_START - HEADER_SIZE) + data_section + m + signature


def edit_manifest(data: bytes, edit) -> bytes:
    """A copy of the bundle with edit(manifest) applied (edit mutates the dict in place)."""
    _, section, manifest, sig = parts(data)
    edit(manifest)
    return assemble(section, manifest, sig)


def decoded(path):
    """(manifest dict, decoded graph bytes, [decoded bytes of each tensor]) of a valid bundle file."""
    from edgepack.runtime import open_bundle

    with open_bundle(path) as b:
        return (json.loads(json.dumps(b.manifest.raw)), bytes(b.read_graph()),
                [bytes(b.read_blob(t)) for t in b.manifest.tensors])


def build(manifest, graph: bytes, tensors, codec: str = "zstd", frame_bytes: int = 1 << 20) -> bytes:
    """An unsigned bundle of `graph` and the tensors' raw bytes (one per entry of manifest["tensors"], whose
    name, dtype, shape, binding and splice are kept), encoded and hashed afresh: what an attacker who
    rewrites a bundle, recomputing every hash, produces."""
    from edgepack.packager.encode import encode
    from edgepack.runtime.format import align

    section = bytearray()

    def blob(raw: bytes, dtype: str) -> dict:
        start = align(len(section))
        section.extend(bytes(start - len(section)))
        enc = encode(memoryview(raw), dtype, 1, frame_bytes, codecs=[codec])
        frames = []
        for f in enc.frames:
            section.extend(f.payload)
            frames.append({"length": len(f.payload), "raw_length": f.raw_length, "sha256": f.sha256, **f.params})
        return {"codec": enc.codec, "offset": start, "length": enc.length, "raw_length": enc.raw_length,
                "sha256": enc.sha256, "frames": frames}

    out = dict(manifest, graph=blob(graph, "uint8"), tensors=[])
    for entry, raw in zip(manifest["tensors"], tensors):
        keep = {k: entry[k] for k in ("name", "dtype", "shape", "binding") if k in entry}
        item = {**keep, **blob(raw, entry["dtype"] if entry.get("dtype") in DTYPES else "uint8")}
        if "splice" in entry:
            item["splice"] = entry["splice"]
        out["tensors"].append(item)
    out["data_length"] = len(section)
    return assemble(bytes(section), out)


def zstd_declaring(frame: bytes, size: int) -> bytes:
    """`frame` (one zstd frame) with its header's content size replaced by `size`, in an 8-byte field."""
    fhd = frame[4]
    single = fhd >> 5 & 1
    fcs_bytes = ((1 if single else 0), 2, 4, 8)[fhd >> 6]
    start = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]   # after the window and dictionary fields
    return frame[:4] + bytes([fhd | 0xC0]) + frame[5:start] + size.to_bytes(8, "little") + frame[start + fcs_bytes:]


def with_frames(data: bytes, index: int, frames, codec: str = "zstd") -> bytes:
    """The bundle with blob `index` (0: the graph; i: tensor i - 1) stored as `frames`, a list of (payload,
    raw_length, sha256 hex), and every blob laid out again."""
    from edgepack.runtime.format import align

    _, section, m, sig = parts(data)
    blobs = [m["graph"], *m["tensors"]]
    out = bytearray()
    for i, blob in enumerate(blobs):
        if i == index:
            payloads = [p for p, _, _ in frames]
            blob.update(codec=codec, raw_length=sum(r for _, r, _ in frames),
                        frames=[{"length": len(p), "raw_length": r, "sha256": h} for p, r, h in frames])
        else:
            pos, payloads = blob["offset"], []
            for f in blob["frames"]:
                payloads.append(section[pos:pos + f["length"]])
                pos += f["length"]
        start = align(len(out))
        out.extend(bytes(start - len(out)))
        blob.update(offset=start, length=sum(len(p) for p in payloads))
        for p in payloads:
            out.extend(p)
    m["data_length"] = len(out)
    return assemble(bytes(out), m, sig)


def joined(manifest, graph: bytes, tensors) -> bytes:
    """The serialized model onnxruntime reads: the graph with its inline tensors spliced back in."""
    parts_, pos = [], 0
    inline = [(t, raw) for t, raw in zip(manifest["tensors"], tensors) if "splice" in t]
    for entry, raw in sorted(inline, key=lambda item: item[0]["splice"]):
        parts_ += [graph[pos:entry["splice"]], raw]
        pos = entry["splice"]
    return b"".join(parts_) + graph[pos:]


def cut(serialized: bytes, manifest, external=()):
    """(manifest, graph, tensors) for a serialized model, every raw_data payload cut out as the packager
    does (without its checks), plus `external` (entry, raw bytes) pairs; for build()."""
    from edgepack.runtime.binding import unique_name
    from edgepack.runtime.format import ONNX_TO_DTYPE
    from edgepack.runtime.protowire import ProtoError, scan_model

    view = memoryview(serialized)
    graph, entries, raws, pos, removed, names = [], [], [], 0, 0, set()
    try:
        records = scan_model(serialized)
    except ProtoError:  # too deep, say: leave every payload in the graph, for the runtime to refuse
        records = []
    for r in records:
        if r.raw_offset is None or r.raw_length == 0:
            continue
        graph.append(view[pos:r.raw_offset])
        name = unique_name(r.label, names)  # the writer's names: the runtime binds them to the graph's
        entries.append({"name": name, "dtype": ONNX_TO_DTYPE.get(r.data_type, "uint8"), "shape": r.dims,
                        "binding": "inline", "splice": r.raw_offset - removed})
        raws.append(bytes(view[r.raw_offset:r.raw_offset + r.raw_length]))
        pos, removed = r.raw_offset + r.raw_length, removed + r.raw_length
    graph.append(view[pos:])
    for entry, raw in external:
        entries.append(entry)
        raws.append(raw)
    return dict(manifest, tensors=entries), b"".join(graph), raws


def rewritten(path, edit, codec: str = "zstd") -> bytes:
    """The bundle at `path` with edit(onnx.ModelProto) applied to its model, cut and built again with fresh
    hashes (a hostile writer's bundle)."""
    import onnx

    manifest, graph, tensors = decoded(path)
    model = onnx.load_from_string(joined(manifest, graph, tensors))
    edit(model)
    external = [(e, raw) for e, raw in zip(manifest["tensors"], tensors) if e["binding"] == "external"]
    return build(*cut(model.SerializeToString(), manifest, external), codec=codec)


def graph_only(template: bytes, model, codec: str = "zstd") -> bytes:
    """A bundle whose graph is `model` and which lists no tensors, the rest of its manifest taken from the
    bundle `template`: for graphs that carry their data in their own typed fields (nothing to splice)."""
    _, _, manifest, _ = parts(template)
    return build(dict(manifest, tensors=[]), model.SerializeToString(), [], codec=codec)


def write(folder, data: bytes):
    """`data` written to a bundle file in `folder`; returns its path."""
    path = folder / "x.edgepack"
    path.write_bytes(data)
    return path
