"""What parsing a manifest costs, by shape, against the 4x bar: python benchmarks/manifest_memory.py [MiB]

For each shape of JSON an attacker can write, two manifests of about MiB MiB (default 60): the shape alone
(`{"report":[item,item,...]}`), and the densest manifest of that shape that the reader's cost bound lets
through (as many items as the bound allows, the rest spaces: the cheapest bytes there are), found by bisection
on runtime/manifest_cost.py's bound. A fresh process reads each from a file and runs the reader's
`manifest.loads` on it; printed: refused or parsed, the bound, and the growth of the process's peak RSS
(VmHWM) over holding the bytes, as a multiple of the manifest's size, against the bar of 4
(MANIFEST_COST_RATIO; docs/FORMAT.md, "Manifest"). Shapes with a character past U+FFFF are capped at
MAX_ASTRAL_MANIFEST_BYTES, so their densest manifest is measured at that size, where the bound's floor
(MANIFEST_FREE_COST) applies rather than the ratio."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

from edgepack.runtime.format import MANIFEST_COST_RATIO, MANIFEST_FREE_COST, MAX_ASTRAL_MANIFEST_BYTES
from edgepack.runtime.manifest import _KNOWN_KEYS
from edgepack.runtime.manifest_cost import char_width, parse_cost

ASTRAL = "\U0001d11e"
SHA = b"a" * 64
TENSOR = (b'{"name":"model.layers.0.mlp.up_proj.weight","dtype":"float32","shape":[64,4096],"binding":"inline",'
          b'"codec":"planes","offset":22464,"length":871797,"raw_length":1048576,"sha256":"' + SHA + b'","frames":'
          b'[{"length":871797,"raw_length":1048576,"sha256":"' + SHA + b'","rotate":1,"planes":[["raw",262144],'
          b'["raw",262144],["raw",262144],["zstd",85365]]}],"splice":382132}')
SHAPES: dict[str, Callable[[int], bytes]] = {
    "short ASCII strings": lambda i: b'"abcdefg"',
    "long ASCII strings": lambda i: b'"' + b"x" * 4000 + b'"',
    "frame records": lambda i: b'{"length":123456,"raw_length":1048576,"sha256":"' + SHA + b'"}',
    "tensor records (planes codec)": lambda i: TENSOR,
    "4-byte UTF-8 strings (issue 19)": lambda i: f'"{ASTRAL * 2}"'.encode(),
    "escaped surrogate pairs": lambda i: b'"\\ud834\\udd1e"',
    "2-byte-wide strings": lambda i: '"\u0101\u0101\u0101"'.encode(),
    "empty lists": lambda i: b"[]",
    "nested lists": lambda i: b"[[[1]]]",
    "one-key objects": lambda i: b'{"a":1}',
    "distinct keys": lambda i: b'{"k%d":0}' % i,
    "one object of distinct keys": lambda i: b'"k%d":0' % i,
    "ints": lambda i: b"%d" % (100000 + i),
    "19-digit ints": lambda i: b"%d" % (10 ** 18 + i),
    "floats": lambda i: b"1.5",
    "literals": lambda i: b"null",
}

CHILD = """
import sys
from edgepack.runtime.manifest import loads
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
text = open(sys.argv[1], "rb").read()
before = hwm()
try:
    loads(text, "m")
    result = "parsed"
except Exception as e:
    result = "refused"
print(result, hwm() - before)
"""


def manifest(shape: Callable[[int], bytes], items: int, size: int) -> bytes:
    inside = b",".join([shape(0)] * items if shape(0) == shape(1) else (shape(i) for i in range(items)))
    body = b'{"report":' + (b"{" + inside + b"}" if shape(0).endswith(b":0") else b"[" + inside + b"]")
    return body + b" " * max(0, size - len(body) - 1) + b"}"


def bound(data: bytes) -> int:
    return parse_cost(data, char_width(data), _KNOWN_KEYS, max(MANIFEST_COST_RATIO * len(data), MANIFEST_FREE_COST))


def densest(shape: Callable[[int], bytes], size: int) -> bytes:
    """The manifest of `size` bytes with the most items of `shape` whose bound is within the limit: the bound
    grows about linearly with the items, so start from the linear guess and step down."""
    limit = max(MANIFEST_COST_RATIO * size, MANIFEST_FREE_COST)
    most = size // (len(shape(0)) + 1)
    full, one = bound(manifest(shape, most, size)), bound(manifest(shape, 1, size))  # both of the shape's width
    items = most if full <= limit else 1 + int((most - 1) * (limit - one) / (full - one))
    while items > 0 and bound(manifest(shape, items, size)) > limit:
        items = int(items * 0.995)
    return manifest(shape, items, size)


def measure(path: str, data: bytes) -> tuple[str, float]:
    with open(path, "wb") as f:
        f.write(data)
    out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, check=True)
    result, growth = out.stdout.split()
    return result, int(growth) / len(data)


def main() -> None:
    mib = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    print(f"peak RSS growth over holding the manifest's bytes, as a multiple of its size; bar {MANIFEST_COST_RATIO}x "
          f"(under {MANIFEST_FREE_COST // MANIFEST_COST_RATIO >> 20} MiB: at most {MANIFEST_FREE_COST >> 20} MiB)")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.json")
        for name, shape in SHAPES.items():
            size = int(mib * 2 ** 20)
            if char_width(shape(0)) == 4:
                size = min(size, MAX_ASTRAL_MANIFEST_BYTES)
            alone = manifest(shape, size // (len(shape(0)) + 1), size)
            result, ratio = measure(path, alone)
            print(f"{name:<31} alone   {len(alone) / 2 ** 20:5.1f} MiB: {result:<8} "
                  f"bound {bound(alone) / len(alone):5.2f}x  peak {ratio:5.2f}x")
            dense = densest(shape, size)
            result, ratio = measure(path, dense)
            growth = ratio * len(dense)
            verdict = "ok" if growth <= max(MANIFEST_COST_RATIO * len(dense), MANIFEST_FREE_COST) else "OVER THE BAR"
            if len(dense) >= MANIFEST_FREE_COST // MANIFEST_COST_RATIO:
                worst = max(worst, ratio)
            print(f"{'':<31} densest {len(dense) / 2 ** 20:5.1f} MiB: {result:<8} "
                  f"bound {bound(dense) / len(dense):5.2f}x  peak {ratio:5.2f}x "
                  f"= {growth / 2 ** 20:5.1f} MiB  {verdict}")
    print(f"worst peak of a manifest of {MANIFEST_FREE_COST // MANIFEST_COST_RATIO >> 20} MiB or more that passes: "
          f"{worst:.2f}x its size (bar {MANIFEST_COST_RATIO}x)")


if __name__ == "__main__":
    main()
