"""apply_delta's memory: the decoded base tensor a difference is taken against, plus a few frames; the
issue's bound is the largest tensor twice plus a few frames, measured over a fresh process's own peak
before it applies (the runtime imported, the same hashes loaded)."""

import numpy as np
from onnx import numpy_helper

import edgepack
import graphs
from edgepack.packager.delta import make_delta


def _peak_mb(code: str) -> float:
    import subprocess
    import sys

    from rss import PEAK_MB_CODE

    out = subprocess.run([sys.executable, "-c", code + "\nimport resource\n" + PEAK_MB_CODE + "\nprint(peak_mb())"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


def test_apply_holds_one_tensor_twice_and_a_few_frames(tmp_path):
    model, _ = graphs.mlp_bytes(total_mb=12, d=1024)  # three 4 MiB weights, 1 MiB frames
    rng = np.random.default_rng(0)
    edgepack.package(model, output=tmp_path / "v1.edgepack")
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array((a * (1 + 1e-3 * rng.standard_normal(a.shape))).astype(a.dtype),
                                              init.name))
    edgepack.package(model, output=tmp_path / "v2.edgepack")
    update = make_delta(tmp_path / "v1.edgepack", tmp_path / "v2.edgepack", tmp_path / "u.edgedelta").path
    largest_mb = 4.0
    setup = ("import hashlib, numpy, zstandard\nfrom edgepack.runtime import apply_delta, open_bundle, open_delta\n"
             f"open_bundle({str(tmp_path / 'v1.edgepack')!r}).close(); open_delta({update!r}).close()\n")
    before = _peak_mb(setup)
    during = _peak_mb(setup + f"apply_delta({str(tmp_path / 'v1.edgepack')!r}, {update!r}, "
                              f"{str(tmp_path / 'out.edgepack')!r})")
    assert (tmp_path / "out.edgepack").read_bytes() == (tmp_path / "v2.edgepack").read_bytes()
    assert during - before <= 2 * largest_mb + 4, (before, during)
