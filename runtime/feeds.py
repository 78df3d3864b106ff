"""Feeds made up for a model (run, measure and report without --inputs): the dtypes of its inputs, and shapes
from --shape NAME=D0,D1,..., else from the shapes the packager recorded from calibration or evaluation data,
else the model's fixed dimensions with each dynamic one 1 (which the caller names when the model then fails)."""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError, OptionError
from .text import clip

Shapes = dict[str, tuple[int, ...]]

_SHAPE = re.compile(r"\s*([^=\s][^=]*?)\s*=\s*(\d+(?:\s*[,x]\s*\d+)*)\s*")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`images=1,3,640,640` (or 1x3x640x640) -> ("images", (1, 3, 640, 640))."""
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise OptionError(f"--shape {text!r}: give NAME=D0,D1,... with positive sizes, e.g. images=1,3,640,640")
    dims = tuple(int(d) for d in re.split(r"\s*[,x]\s*", match.group(2)))
    if any(d <= 0 for d in dims):
        raise OptionError(f"--shape {text!r}: every size must be positive")
    return match.group(1), dims


def parse_shapes(texts: Iterable[str] | None) -> Shapes:
    """Several --shape values; an input named twice is an error."""
    out: Shapes = {}
    for text in texts or ():
        name, dims = parse_shape(text)
        if name in out:
            raise OptionError(f"--shape names input {name!r} twice")
        out[name] = dims
    return out


def _dynamic(d: Any) -> bool:
    return not (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0)


def check_shapes(shapes: Mapping[str, Sequence[int]], specs: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Refuse a --shape naming no input, or one whose rank or fixed sizes contradict the model's input."""
    known = {name: dims for name, dims in specs}
    for name, dims in shapes.items():
        if name not in known:
            raise OptionError(f"--shape names {name!r}, which is not an input; the inputs are {list(known)}")
        model = known[name]
        if model is not None and (len(model) != len(dims) or
                                  any(not _dynamic(m) and m != d for m, d in zip(model, dims))):
            raise OptionError(f"--shape {name}={','.join(map(str, dims))} does not fit the input's shape "
                              f"{show_shape(model)}")


def show_shape(dims: Sequence[Any] | None) -> str:
    """[1, 3, 'height', '?']: fixed sizes, symbolic names, and '?' for unnamed dynamic dimensions."""
    if dims is None:
        return "[unknown rank]"
    return "[" + ", ".join(str(d) if not _dynamic(d) else (d if isinstance(d, str) and d else "?") for d in dims) + "]"


def resolve_shape(name: str, dims: Sequence[Any], given: Mapping[str, Sequence[int]],
                  recorded: Mapping[str, Sequence[int]]) -> tuple[tuple[int, ...], bool]:
    """The shape to feed input `name` and whether it was guessed (a dynamic dimension set to 1)."""
    if name in given:
        return tuple(given[name]), False
    rec = recorded.get(name)
    if rec is not None and len(rec) == len(dims) and all(_dynamic(d) or d == r for d, r in zip(dims, rec)):
        return tuple(int(r) for r in rec), False
    return tuple(1 if _dynamic(d) else int(d) for d in dims), any(_dynamic(d) for d in dims)


def random_feeds(specs: Sequence[tuple[str, Any, Sequence[Any]]], shapes: Mapping[str, Sequence[int]] | None = None,
                 recorded: Mapping[str, Sequence[int]] | None = None, seed: int = 0
                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Seeded random feeds for inputs given as (name, numpy dtype or None, dims), and the names of the inputs
    whose shape was guessed. Floats are standard normal; integers and booleans 0 or 1 (valid ids for any
    vocabulary)."""
    given = dict(shapes or {})
    check_shapes(given, [(n, d) for n, _, d in specs])
    rng = np.random.default_rng(seed)
    feeds, guessed = {}, []
    for name, dtype, dims in specs:
        shape, guess = resolve_shape(name, dims, given, recorded or {})
        if guess:
            guessed.append(name)
        dt = np.dtype(dtype or np.float32)
        try:
            feeds[name] = (rng.standard_normal(shape) if dt.kind == "f" else rng.integers(0, 2, shape)).astype(dt)
        except (MemoryError, ValueError) as e:  # a --shape too large for this machine (or numpy's limits)
            raise InputError(f"random input {name!r} of shape {list(shape)} cannot be made here ({clip(e, 120)}); "
                             "give a smaller --shape, or pass --inputs FEEDS.npz") from None
    return feeds, guessed


def unknown_shape_hint(guessed: Sequence[str], specs: Sequence[tuple[str, Any, Sequence[Any]]]) -> str:
    """What to say when a model failed on guessed shapes: which inputs, and how to give their shapes."""
    dims = {n: d for n, _, d in specs}
    shown = ", ".join(f"{n} {show_shape(dims[n])}" for n in guessed)
    def size(i: int, d: Any) -> str:
        if not _dynamic(d):
            return str(d)
        return "1" if i == 0 else (d.upper() if isinstance(d, str) and d.isidentifier() else f"D{i}")

    example = " ".join(f"--shape {n}=" + ",".join(size(i, d) for i, d in enumerate(dims[n] or ())) for n in guessed)
    return (f"the shape of {shown} is not known (each dynamic dimension was set to 1): give it with {example} "
            "(real sizes in place of the names), or pass --inputs FEEDS.npz")


RECORDED = "input_shapes"  # the key under the manifest's report where the packager records sample shapes
# A recorded shape is the bundle's word, not the user's: random feeds are made for it only up to this many
# elements (64 MiB of float32) and this rank; a larger one is refused rather than allocated.
MAX_RECORDED_ELEMENTS = 1 << 24
MAX_RECORDED_RANK = 32


def recorded_shapes(manifest_raw: Mapping[str, Any] | None, given: Iterable[str] = ()) -> Shapes:
    """The input shapes a bundle's manifest records (from its calibration or evaluation data), if any; inputs
    named in `given` (shapes from --shape) are skipped. A recorded shape over MAX_RECORDED_ELEMENTS elements or
    MAX_RECORDED_RANK dimensions is an InputError naming the input."""
    report = (manifest_raw or {}).get("report") or {}
    shapes = report.get(RECORDED) or {} if isinstance(report, dict) else {}
    if not isinstance(shapes, dict):
        return {}
    skip = set(given)
    out: Shapes = {}
    for k, v in shapes.items():
        if str(k) in skip or not isinstance(v, list) or not all(isinstance(d, int) and d > 0 for d in v):
            continue
        elements = 1
        for d in v:
            elements *= min(d, MAX_RECORDED_ELEMENTS + 1)  # bounded: a recorded 2**10000 costs nothing
        if elements > MAX_RECORDED_ELEMENTS or len(v) > MAX_RECORDED_RANK:
            raise InputError(f"the bundle records a sample shape for input {clip(repr(str(k)), 80)} of "
                             f"{'rank ' + str(len(v)) if len(v) > MAX_RECORDED_RANK else clip(str(v), 80)}, "
                             f"more than the {MAX_RECORDED_ELEMENTS} elements (rank {MAX_RECORDED_RANK}) random "
                             "feeds are made for: give its shape with --shape NAME=D0,D1,... or its values with "
                             "--inputs FEEDS.npz")
        out[str(k)] = tuple(int(d) for d in v)
    return out


def bundle_shapes(path: str, given: Iterable[str] = ()) -> Shapes:
    """recorded_shapes() of the bundle file at `path` (reads its manifest only)."""
    from .reader import open_bundle

    with open_bundle(path) as b:
        return recorded_shapes(b.manifest.raw, given)


NPZ_EXPANSION = 64          # an .npz may unpack to this many times its size ...
NPZ_FLOOR = 64 << 20        # ... or to this many bytes, whichever is more (LoadLimits' figures for bundles)
TOKEN_BYTES = 16            # a token id as perplexity holds it: list slots for it, twice
STRING_BYTES = 90           # a string element in onnxruntime beyond its characters (limits.py counts so too)


def check_npz(path: str, what: str) -> None:
    """Refuse, before numpy allocates anything, an .npz that is not one numpy.savez writes or that unpacks to
    more than its size allows: numpy.load trusts an array's header (a 236-byte file declaring 10**14 floats
    was a MemoryError) and unpacks whatever the zip holds (2 MB of deflated zeros took 2.1 GB and 17 s).
    Every member's declared size (the zip's, which zipfile never reads past) counts; an array's header must
    declare no more bytes than its member holds, and no Python objects (numpy would unpickle them)."""
    import os
    import zipfile

    if not os.path.isfile(path):
        raise OptionError(f"{path}: no such file of {what}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            lone = f.read(6) == b"\x93NUMPY"
        kind = "a single .npy array, not an .npz archive" if lone else "not an .npz archive"
        raise OptionError(f"{path}: cannot read {what}: it is {kind}; save the arrays with "
                          "numpy.savez(path, name=array, ...)")
    size = os.path.getsize(path)
    try:
        _check_members(path, what, size)
    except _damaged() as e:
        raise _unreadable(path, what, e) from None


def _check_members(path: str, what: str, size: int) -> None:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        total = sum(m.file_size for m in members)
        most = max(NPZ_FLOOR, NPZ_EXPANSION * size)
        if total > most:
            raise OptionError(f"{path}: its {size} bytes unpack to {total}, more than the {most} an .npz of "
                              f"{what} may (at least {NPZ_FLOOR >> 20} MiB, else {NPZ_EXPANSION} times its "
                              "size): save the arrays with numpy.savez, uncompressed")
        from .host import physical_memory

        memory = physical_memory()
        if memory is not None and total > memory:
            raise OptionError(f"{path}: its arrays take {total} bytes, more than the {memory} bytes of memory "
                              "this machine has")
        strings = sum(_check_member(path, what, zf, m) for m in members)
        if strings and total + STRING_BYTES * strings > most:
            raise OptionError(f"{path}: its {strings} strings take some {total + STRING_BYTES * strings} bytes "
                              f"once onnxruntime holds them, more than the {most} an .npz of {size} bytes may; "
                              "save the arrays with numpy.savez, uncompressed")


def _check_member(path: str, what: str, zf: Any, member: Any) -> int:
    """The header of one member that numpy would read as an array (it starts with the .npy magic); returns
    how many strings it holds."""
    from numpy.lib import format as npy

    with zf.open(member) as f:
        if f.read(6) != npy.MAGIC_PREFIX:
            return 0  # numpy hands such a member back as its bytes
        version = (f.read(1) + f.read(1))
        readers = {b"\x01\x00": npy.read_array_header_1_0, b"\x02\x00": npy.read_array_header_2_0}
        if version not in readers:
            raise OptionError(f"{path}: {what} {clip(repr(member.filename), 80)} is a .npy of a version numpy.savez "
                              "does not write for numbers; save the arrays with numpy.savez")
        shape, _, dtype = readers[version](f)
    if dtype.hasobject:
        raise OptionError(f"{path}: {what} {clip(repr(member.filename), 80)} holds Python objects, which are "
                          "never unpickled; save numeric or string arrays")
    count = 1
    for d in shape:
        count *= d
    # an element counts a byte at least: 10**8 strings of dtype <U0 take no bytes in the file, and 3.6 GB as
    # onnxruntime's strings
    size = count * max(dtype.itemsize, 1)
    if size > member.file_size:
        raise OptionError(f"{path}: {what} {clip(repr(member.filename), 80)} declares shape {clip(shape, 80)} of "
                          f"{dtype} ({size} bytes) but holds {member.file_size}; the file is damaged or was not "
                          "written by numpy.savez")
    return count if dtype.kind in "US" else 0


def _damaged() -> tuple[type[BaseException], ...]:
    """Every way zipfile and numpy fail on a damaged archive: zlib.error and LZMAError (corrupt streams),
    EOFError (truncated), NotImplementedError (an unknown compression method), RuntimeError (an encrypted
    member), MemoryError, and numpy's ValueError and OSError."""
    import lzma
    import zipfile
    import zlib

    return (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, MemoryError, zipfile.BadZipFile,
            zlib.error, lzma.LZMAError)


def _unreadable(path: str, what: str, e: BaseException) -> OptionError:
    if isinstance(e, MemoryError):
        return OptionError(f"{path}: its {what} take more memory than this process can allocate")
    return OptionError(f"{path}: cannot read {what} ({clip(e, 200)}); give an .npz file written by numpy.savez")


def read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, or one line saying why it cannot be read (a text file, a lone .npy array,
    a damaged or hostile archive: check_npz)."""
    check_npz(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except _damaged() as e:
        raise _unreadable(path, what, e) from None


def token_ids_npz(path: str) -> list[int]:
    """The token ids of an .npz (its arrays' elements in order), read as read_npz reads feeds: integer arrays
    only (numpy's int() of NaN, of inf or of a bytes member failed with a foreign error)."""
    import os

    arrays = read_npz(path, "token ids")
    for name, array in arrays.items():
        if array.dtype.kind not in "iu":
            raise InputError(f"{path}: {clip(repr(name), 80)} holds {array.dtype}, not token ids; save integer "
                             "arrays")
    # a token id becomes a Python int in a list (and a copy): 65 KB of deflated uint8 ones held 64 M of them,
    # 1.2 GB, and perplexity on them ran for hours
    count = sum(a.size for a in arrays.values())
    size = os.path.getsize(path)
    most = max(NPZ_FLOOR, NPZ_EXPANSION * size) // TOKEN_BYTES
    if count > most:
        raise InputError(f"{path}: its {size} bytes hold {count} token ids, more than the {most} an .npz of that "
                         "size may; save them with numpy.savez, uncompressed, or score the text in parts")
    ids: list[int] = []
    for array in arrays.values():
        ids.extend(array.reshape(-1).tolist())
    return ids
