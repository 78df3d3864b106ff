"""The two bundle layouts against plain onnxruntime: bundle bytes, time to first inference, peak RSS.

For an fp32 model (the 50 MB MLP of tests/graphs.py) and its int8 version (onnxruntime's quantize_dynamic:
int8 weights, MatMulInteger), four ways to reach a first inference, each in fresh child processes
(edgepack.runtime.measure_child.measure_child), in turn, round after round:

    onnx        plain onnxruntime, the .onnx file with its weights inline
    onnx-ext    plain onnxruntime, the .onnx with its weights in an external data file at page-aligned offsets
                (onnxruntime maps it: its best layout, and the acceptance bar's baseline)
    compressed  an edgepack bundle of the default layout (weights coded, streamed through a FIFO)
    mapped      an edgepack bundle of the mapped layout (weights raw and page-aligned, mapped from the bundle)

`warm`: the files are in the page cache (a model loaded before). `cold`: before each process, the model's
files are dropped from the page cache with posix_fadvise(POSIX_FADV_DONTNEED), so the load reads them from
the disk (Python and onnxruntime's own files stay cached). Figures are medians over the rounds; ratios are
medians of each round's ratio against onnx-ext.

    python benchmarks/mapped.py --rounds 7
    python benchmarks/mapped.py --only fp32 --modes warm --rounds 9
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from common import median, ratio, rounds, table
from onnx import numpy_helper


def external_copy(src: str, folder: str, name: str) -> list[str]:
    """Save the model at `src` as NAME.onnx + NAME.bin, every initializer's data external at a 4096-aligned
    offset (as the acceptance's baseline). Returns both paths."""
    m = onnx.load(src)
    data = os.path.join(folder, f"{name}.bin")
    with open(data, "wb") as f:
        off = 0
        for t in m.graph.initializer:
            raw = numpy_helper.to_array(t).tobytes()
            off = (off + 4095) // 4096 * 4096
            f.seek(off)
            f.write(raw)
            t.ClearField("raw_data")
            del t.int64_data[:], t.float_data[:], t.int32_data[:]
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", f"{name}.bin"), ("offset", str(off)), ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            off += len(raw)
    path = os.path.join(folder, f"{name}.onnx")
    onnx.save(m, path)
    return [path, data]


def drop_cache(paths: list[str]) -> None:
    """Drop the files' pages from the page cache (pages nothing maps; no root needed)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def prepare(folder: str, which: list[str]) -> list[tuple[str, str, str]]:
    """(label, .onnx path, feeds .npz) of the fp32 MLP and its int8 version."""
    import graphs

    model, feeds = graphs.mlp_bytes(50)
    fp32 = os.path.join(folder, "fp32.onnx")
    onnx.save(model, fp32)
    np.savez(os.path.join(folder, "feeds.npz"), **feeds)
    out = [("fp32", fp32)]
    if "int8" in which:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = os.path.join(folder, "int8.onnx")
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        out.append(("int8", int8))
    return [(label, path, os.path.join(folder, "feeds.npz")) for label, path in out if label in which]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--only", default="fp32,int8", help="models: fp32, int8 or both (default)")
    ap.add_argument("--modes", default="warm,cold", help="warm, cold or both (default)")
    ap.add_argument("--runs", type=int, default=5, help="runs after the first, per process (default 5)")
    args = ap.parse_args()
    from edgepack.runtime.measure_child import measure_child

    import edgepack

    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, feeds in prepare(tmp, args.only.split(",")):
            ext = external_copy(path, tmp, f"{label}_ext")
            files = {"onnx": [path], "onnx-ext": ext}
            for layout in ("compressed", "mapped"):
                bundle = os.path.join(tmp, f"{label}.{layout}.edgepack")
                edgepack.package(path, output=bundle, layout=layout)
                files[layout] = [bundle]
            for mode in args.modes.split(","):
                def child(kind: str, name: str, mode: str = mode, files: dict[str, list[str]] = files,
                          feeds: str = feeds) -> Callable[[], dict[str, Any]]:
                    def run() -> dict[str, Any]:
                        if mode == "cold":
                            drop_cache(files[name])
                        return measure_child(kind, files[name][0], feeds, runs=args.runs)
                    return run

                r = rounds({"onnx": child("onnx", "onnx"), "onnx-ext": child("onnx", "onnx-ext"),
                            "compressed": child("bundle", "compressed"), "mapped": child("bundle", "mapped")},
                           args.rounds)
                base = r["onnx-ext"]
                for name, results in r.items():
                    size = sum(os.path.getsize(p) for p in files[name])
                    fi = lambda x: x["first_inference_s"] * 1000
                    pk = lambda x: x["peak_mb"]
                    rows.append([label, mode, name, f"{size / 1e6:.1f}", f"{median(results, fi):.1f}",
                                 f"{ratio(results, base, fi):.2f}", f"{median(results, pk):.1f}",
                                 f"{ratio(results, base, pk):.3f}"])
    print(f"{args.rounds} rounds, medians; ratios against onnx-ext (plain onnxruntime, page-aligned external data)")
    table(["model", "cache", "how", "MB on disk", "first inference ms", "ratio", "peak RSS MB", "ratio"], rows)


if __name__ == "__main__":
    main()
