"""Mutations of a valid bundle, each a function (seed, rng, other seeds) -> bytes.

Three families, drawn with the weights in FAMILIES:
  bytes     bit flips, truncation, overwrites, splices (chunks moved, duplicated, or taken from another
            bundle), appended bytes, header fields set to edge values;
  manifest  structured edits of the parsed manifest, re-serialized with the data section untouched: edge
            integers (huge, negative, overflowing, misaligned), wrong types, missing and unknown keys,
            duplicate or aliased tensors, unknown codecs and dtypes, odd names, moved splices, frames split
            or dropped, deeply nested JSON, raw-text tricks (duplicate keys, 1e400, BOM);
  resealed  edits of the decoded graph or tensors, re-encoded with every hash recomputed (what an attacker
            who rewrites a bundle produces): graph bytes, protobuf-level graph edits, tensor values;
  wire      protobuf wire-encoding edits no onnx writer makes (wire.py), resealed likewise.
"""

from __future__ import annotations

import json
import random
from typing import Any
from collections.abc import Callable

import bundles
from edgepack.runtime.format import DATA_START, DTYPES, HEADER, HEADER_SIZE

from .seeds import Seed

Mutator = Callable[[Seed, random.Random, list[Seed]], bytes]

U64_EDGES = [0, 1, 63, 64, 65, 4095, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 62,
             2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]
INT_EDGES = [-(2 ** 64), -(2 ** 63), -65, -64, -1, 0, 1, 2, 7, 63, 64, 65, 4095, 4096, 2 ** 24, 2 ** 31,
             2 ** 32, 2 ** 53 + 1, 2 ** 62, 2 ** 63, 2 ** 64, 10 ** 30]
ODD_VALUES = [None, True, False, 1.5, -0.0, 1e308, "", "x", "1", [], {}, [1], {"a": 1}, [[[]]], "\u0000",
              "\ud800", "\u202e", "a" * 5000]


def _edge_int(rng: random.Random, near: int | None = None) -> int:
    if near is not None and rng.random() < 0.4:
        return near + rng.choice([-64, -2, -1, 1, 2, 63, 64, 4096, near, -near])
    return rng.choice(INT_EDGES)


# --- bytes ----------------------------------------------------------------------------------------------

def _regions(seed: Seed) -> list[tuple[int, int]]:
    """Header, manifest and the whole file: flips aimed at the small parts reach the parser more often."""
    _, _, _, m_off, m_len, _ = HEADER.unpack(seed.data[:HEADER_SIZE])
    return [(0, DATA_START), (m_off, m_off + m_len), (0, len(seed.data))]


def bit_flips(seed, rng, others):
    b = bytearray(seed.data)
    lo, hi = rng.choice(_regions(seed))
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(seed, rng, others):
    n = len(seed.data)
    return seed.data[:rng.choice([rng.randrange(n), n - rng.randint(1, 200), rng.randrange(DATA_START + 1)])]


def overwrite(seed, rng, others):
    b = bytearray(seed.data)
    lo, hi = rng.choice(_regions(seed))
    i = rng.randrange(lo, hi)
    b[i:i + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
    return bytes(b)


def splice(seed, rng, others):
    b, n = seed.data, len(seed.data)
    i, j = sorted(rng.randrange(n) for _ in range(2))
    kind = rng.randrange(3)
    if kind == 0:                      # move a chunk
        return b[:i] + b[j:] + b[i:j]
    if kind == 1:                      # duplicate a chunk in place
        return b[:j] + b[i:j] + b[j:]
    other = rng.choice(others).data    # a chunk of another bundle
    k, m = sorted(rng.randrange(len(other)) for _ in range(2))
    return b[:i] + other[k:m] + b[j:]


def append(seed, rng, others):
    return seed.data + rng.choice([b"\0", rng.randbytes(rng.randint(1, 100)), rng.choice(others).data])


def header_field(seed, rng, others):
    fields = list(HEADER.unpack(seed.data[:HEADER_SIZE]))
    i = rng.randrange(1, len(fields))
    limit = 2 ** 32 - 1 if i < 3 else 2 ** 64 - 1
    fields[i] = min(limit, rng.choice(U64_EDGES + [fields[i] + rng.choice([-64, -1, 1, 64])]) % (limit + 1))
    return HEADER.pack(*fields) + seed.data[HEADER_SIZE:]


# --- manifest -------------------------------------------------------------------------------------------

def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) into a JSON value."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _edit(seed: Seed, change: Callable[[dict], None]) -> bytes:
    _, section, manifest, sig = bundles.parts(seed.data)
    change(manifest)
    return bundles.assemble(section, manifest, sig)


def int_field(seed, rng, others):
    def change(m):
        ints = [p for p in _paths(m) if p and type(_get(m, p)) is int and p[0] not in ("provenance", "report")]
        p = rng.choice(ints)
        _get(m, p[:-1])[p[-1]] = _edge_int(rng, _get(m, p))
    return _edit(seed, change)


def wrong_type(seed, rng, others):
    def change(m):
        p = rng.choice([p for p in _paths(m) if p])
        _get(m, p[:-1])[p[-1]] = rng.choice(ODD_VALUES)
    return _edit(seed, change)


def keys(seed, rng, others):
    def change(m):
        objects = [p for p in _paths(m) if isinstance(_get(m, p), dict)]
        obj = _get(m, rng.choice(objects))
        if obj and rng.random() < 0.6:
            del obj[rng.choice(list(obj))]
        else:
            obj[rng.choice(["extra", "codec", "splice", "params", "level", ""])] = rng.choice(ODD_VALUES)
    return _edit(seed, change)


def tensors(seed, rng, others):
    """Duplicate, reorder, alias or rename tensor entries."""
    def change(m):
        ts = m["tensors"]
        if not ts:
            ts.append(dict(m["graph"], name="w", dtype="uint8", shape=[m["graph"]["raw_length"]],
                           binding="inline", splice=0))
            return
        i, j = rng.randrange(len(ts)), rng.randrange(len(ts))
        kind = rng.randrange(6)
        if kind == 0:
            ts.insert(j, dict(ts[i]))
        elif kind == 1:
            rng.shuffle(ts)
        elif kind == 2:   # alias: i's entry points at j's data (and its frames, so the sizes agree)
            ts[i].update({k: ts[j][k] for k in ("codec", "offset", "length", "raw_length", "sha256", "frames")})
        elif kind == 3:
            ts[i]["name"] = rng.choice([ts[j]["name"], "<graph>", "", "a" * 5000, "\u0000", "w\ud800", "#2"])
        elif kind == 4:
            del ts[i]
        else:             # the graph aliases a tensor
            m["graph"].update({k: ts[i][k] for k in ("codec", "offset", "length", "raw_length", "sha256", "frames")})
    return _edit(seed, change)


def tensor_fields(seed, rng, others):
    """Shapes, dtypes, codecs, bindings and splices: the fields that say how to decode and where."""
    def change(m):
        if not m["tensors"]:
            m["tensors"] = [{"name": "t"}]
        t = rng.choice(m["tensors"])
        kind = rng.randrange(6)
        if kind == 0:
            t["shape"] = rng.choice([[2 ** 62], [2 ** 40, 2 ** 40], [-1], [0], [1] * 33, [[2]], [1.0],
                                     [t.get("raw_length", 1)], list(reversed(t.get("shape", []))), []])
        elif kind == 1:
            t["dtype"] = rng.choice(list(DTYPES) + ["float128", "string", "", None, ["float32"]])
        elif kind == 2:
            t["codec"] = rng.choice(["raw", "zstd", "lz4", "ZSTD", "", None, "zstd\0"])
        elif kind == 3:
            t["binding"] = rng.choice(["inline", "external", "remote", None])
            if t["binding"] == "external" and rng.random() < 0.7:
                t.pop("splice", None)
        elif kind == 4:
            t["splice"] = _edge_int(rng, t.get("splice", 0))
        else:
            other = rng.choice(m["tensors"])
            t["splice"], other["splice"] = other.get("splice"), t.get("splice")
    return _edit(seed, change)


def frames(seed, rng, others):
    def change(m):
        blob = rng.choice([m["graph"], *m["tensors"]])
        fs = blob.get("frames") or [{"length": 0, "raw_length": 0, "sha256": "0" * 64}]
        f = rng.randrange(len(fs))
        kind = rng.randrange(5)
        if kind == 0:    # split a frame in two halves that no longer decode
            a = dict(fs[f], length=fs[f]["length"] // 2, raw_length=fs[f]["raw_length"] // 2)
            b = dict(fs[f], length=fs[f]["length"] - a["length"], raw_length=fs[f]["raw_length"] - a["raw_length"])
            fs[f:f + 1] = [a, b]
        elif kind == 1:
            del fs[f]
        elif kind == 2:
            fs.reverse()
        elif kind == 3:  # a frame that claims much more than it stores: a bomb by the manifest's word
            fs[f]["raw_length"] = rng.choice([16 * 2 ** 20, 16 * 2 ** 20 + 1, 2 ** 40])
            blob["raw_length"] = sum(x["raw_length"] for x in fs)
        else:
            fs *= rng.choice([2, 1000])
        blob["frames"] = fs
    return _edit(seed, change)


def nested(seed, rng, others):
    """Deep nesting where the schema allows any object, or where it expects a scalar (written as text, since
    json.dumps itself cannot nest that deep)."""
    depth = rng.choice([30, 31, 32, 33, 100, 900, 5000])
    opens = [rng.choice(['[', '{"k":']) for _ in range(depth)]
    inner = "".join(opens) + "1" + "".join("]" if o == "[" else "}" for o in reversed(opens))
    _, section, manifest, sig = bundles.parts(seed.data)
    p = rng.choice([("target", "x"), ("report", "deep"), ("provenance", "steps"), ("data_length",),
                    ("tensors", 0, "shape"), ("graph", "frames")])
    try:
        _get(manifest, p[:-1])[p[-1]] = "@@DEEP@@"
    except (IndexError, KeyError, TypeError):
        manifest["report"]["deep"] = "@@DEEP@@"
    text = json.dumps(manifest, separators=(",", ":")).replace('"@@DEEP@@"', inner)
    return bundles.assemble(section, None, sig, manifest_bytes=text.encode())


def text(seed, rng, others):
    """Edits of the manifest's text: what JSON allows, or almost allows."""
    _, section, manifest, sig = bundles.parts(seed.data)
    t = json.dumps(manifest, separators=(",", ":"))
    kind = rng.randrange(7)
    if kind == 0:
        t = t.replace('"version":1', '"version":1,"version":1', 1)
    elif kind == 1:
        t = t.replace('"data_length":', '"data_length":1e400,"x":', 1)
    elif kind == 2:
        t = "\ufeff" + t
    elif kind == 3:
        t = t + rng.choice(["x", " ", "\0", "{}", "\n" * 10])
    elif kind == 4:
        t = t.replace(":", ": " + " " * rng.choice([1, 1000]), rng.randint(1, 50))
    elif kind == 5:
        t = t.replace('"raw_length":', '"raw_length":-0', 1).replace('"offset":0', '"offset":0.0', 1)
    else:
        t = t.replace("}", "," * rng.randint(1, 3) + "}", 1)
    return bundles.assemble(section, None, sig, manifest_bytes=t.encode("utf-8", "surrogatepass"))


def target(seed, rng, others):
    def change(m):
        t = m["target"]
        part = rng.choice(["session", "codec", "memory", "device"])
        if not isinstance(t.get(part), dict):
            t[part] = {}
        key = rng.choice(["intra_op_threads", "inter_op_threads", "threads", "level", "frame_bytes", "ram_mb",
                          "execution_mode", "graph_optimization_level", "unknown"])
        t[part][key] = rng.choice([10 ** 6, 2 ** 31, 2 ** 63, 257, 256, -1, 0, "parallel", "all", None, 1.0])
        if rng.random() < 0.3:
            t["providers"] = rng.choice([[], ["NoSuchProvider"], ["CUDAExecutionProvider"], "CPU", [1]])
    return _edit(seed, change)


# --- resealed -------------------------------------------------------------------------------------------

def _reseal(seed: Seed, graph: bytes, tensors: list[bytes], manifest: dict | None = None, rng=None) -> bytes:
    codec = rng.choice(["zstd", "raw"]) if rng else "zstd"
    return bundles.build(manifest or seed.manifest, graph, tensors, codec=codec)


def graph_bytes(seed, rng, others):
    g = bytearray(seed.graph)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(g))
        if rng.random() < 0.5:
            g[i] ^= 1 << rng.randrange(8)
        else:
            g[i:i + 1] = rng.choice([b"\xff" * 10, b"\x00", b"\x80", bytes([rng.randrange(256)])])
    return _reseal(seed, bytes(g), seed.tensors, rng=rng)


def tensor_values(seed, rng, others):
    """New values in one tensor (shape tensors and indices included), its size unchanged."""
    if not seed.tensors:
        return graph_bytes(seed, rng, others)
    ts = list(seed.tensors)
    i = rng.randrange(len(ts))
    t = bytearray(ts[i])
    if t:
        fill = rng.choice([b"\xff", b"\x7f", b"\x80", b"\x00"])
        start = rng.randrange(len(t))
        n = rng.choice([1, 8, len(t)])
        t[start:start + n] = (fill * n)[:len(t[start:start + n])]
    ts[i] = bytes(t)
    return _reseal(seed, seed.graph, ts, rng=rng)


def graph_proto(seed, rng, others):
    """A protobuf-level edit of the model (onnx), split and packaged again with fresh hashes."""
    from . import graph_edits

    edited = graph_edits.edit(seed, rng)
    if edited is None:
        return graph_bytes(seed, rng, others)
    manifest, graph, tensors = edited
    return _reseal(seed, graph, tensors, manifest, rng)


def wire_encoding(seed, rng, others):
    """A protobuf wire-level edit of the model (tags, varint widths, enums, duplicated and unknown fields,
    wire types, external data: tests/fuzz/wire.py), cut and resealed with fresh hashes."""
    from . import wire

    edited = wire.mutate_model(seed.manifest, bundles.joined(seed.manifest, seed.graph, seed.tensors),
                               seed.tensors, rng)
    if edited is None:
        return graph_bytes(seed, rng, others)
    _, manifest, graph, tensors = edited
    return _reseal(seed, graph, tensors, manifest, rng)


FAMILIES: list[tuple[float, list[Mutator]]] = [
    (0.30, [bit_flips, truncate, overwrite, splice, append, header_field]),
    (0.35, [int_field, wrong_type, keys, tensors, tensor_fields, frames, nested, text, target]),
    (0.20, [graph_bytes, tensor_values, graph_proto]),
    (0.15, [wire_encoding]),
]


def mutate(seed: Seed, rng: random.Random, others: list[Seed]) -> tuple[str, bytes]:
    """One mutant of `seed`: (the mutation's name, the bundle's bytes)."""
    x = rng.random()
    for weight, mutators in FAMILIES:  # noqa: B007 -- the family the loop stops on is used after it
        if x < weight:
            break
        x -= weight
    mutator = rng.choice(mutators)
    return mutator.__name__, mutator(seed, rng, others)
