"""Peak RSS of refusing hostile bundles, against opening and running a valid one, each in a fresh process.

    python benchmarks/attack_memory.py

Each line is the peak RSS (VmHWM) of a child process that opens or loads one bundle and gets the error it
should: a 1 GiB graph declared by frames that fail their hash, a manifest over the 64 MiB cap, 60 MiB
manifests of tiny JSON values (refused by the value count), and the costliest manifest that passes the
count (60 MiB of 9-byte strings, which parses). tests/attacks asserts bounds on the same cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "attacks"))

FRAME = 16 * 2 ** 20


def main() -> None:
    import zstandard

    import bundles
    import edgepack
    import graphs
    from conftest import child_peak_mb, peak_mb_refusing
    from edgepack.runtime.format import MAX_MANIFEST_BYTES

    folder = pathlib.Path(tempfile.mkdtemp())
    model, _ = graphs.mlp(hidden=(64, 64))
    edgepack.package(model, output=folder / "m.edgepack")
    data = (folder / "m.edgepack").read_bytes()
    valid = str(folder / "m.edgepack")
    opened = child_peak_mb(f"import edgepack.runtime as rt; rt.open_bundle({valid!r})")
    print(f"open a valid bundle:        {opened:6.0f} MB")
    run = f"import edgepack.runtime as rt, numpy as np; rt.load({valid!r}).run({{'x': np.zeros((1, 64), np.float32)}})"
    print(f"load and run it:            {child_peak_mb(run):6.0f} MB")

    bomb = zstandard.ZstdCompressor(level=3).compress(bytes(FRAME))
    path = folder / "graph.edgepack"
    path.write_bytes(bundles.with_frames(data, 0, [(bomb, FRAME, hashlib.sha256(b"x").hexdigest())] * 64))
    peak = peak_mb_refusing(f"rt.load({str(path)!r})", "CorruptTensor")
    print(f"load a 1 GiB graph declared in {path.stat().st_size:,} bytes: {peak:6.0f} MB")

    _, section, manifest, _ = bundles.parts(data)
    text = json.dumps(manifest).encode()
    path = folder / "cap.edgepack"
    padded = text[:-1] + b" " * (MAX_MANIFEST_BYTES + 1 - len(text)) + b"}"
    path.write_bytes(bundles.assemble(section, None, manifest_bytes=padded))
    peak = peak_mb_refusing(f"rt.open_bundle({str(path)!r})", "ManifestTooLarge")
    print(f"open a 64 MiB + 1 manifest:  {peak:6.0f} MB")

    path = folder / "values.edgepack"
    for item, error in ((b"[]", "LimitExceeded"), (b"{}", "LimitExceeded"), (b'"ab"', "LimitExceeded"),
                        (b'"abcdefg"', None)):
        filler = b"[" + b",".join([item] * ((60 * 2 ** 20) // (len(item) + 1))) + b"]"
        manifest_text = json.dumps(dict(manifest, report={"x": "@"})).encode().replace(b'"@"', filler)
        path.write_bytes(bundles.assemble(section, None, manifest_bytes=manifest_text))
        call = f"rt.open_bundle({str(path)!r})"
        peak = peak_mb_refusing(call, error) if error else child_peak_mb(f"import edgepack.runtime as rt; {call}")
        outcome = error or "parsed: the worst that passes"
        print(f"open a 60 MiB manifest of {item.decode():10s} {peak:6.0f} MB ({outcome})")


if __name__ == "__main__":
    main()
