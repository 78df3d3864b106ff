"""What parsing a large manifest costs, by shape: python benchmarks/manifest_memory.py [MiB]

For each shape, a fresh process reads a MiB-sized manifest JSON from a file, then runs the reader's
`manifest.loads` on it; printed: refused or parsed, and the growth of the process's peak RSS (VmHWM) over
holding the bytes, as a multiple of the manifest's size (docs/FORMAT.md, "Manifest")."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

ASTRAL = "\U0001d11e"
SHAPES = {
    "short ASCII strings": b'"abcdefg"',
    "frame records": b'{"length":123456,"raw_length":1048576,"sha256":"' + b"a" * 64 + b'"}',
    "4-byte UTF-8 strings (issue 19)": f'"{ASTRAL * 2}"'.encode(),
    "escaped surrogate pairs": b'"\\ud834\\udd1e"',
    "2-byte-wide strings": '"\u0101\u0101\u0101"'.encode(),
    "empty lists": b"[]",
}

CHILD = """
import sys
from edgepack.runtime.manifest import loads
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
text = open(sys.argv[1], "rb").read()
before = hwm()
try:
    loads(text, "m")
    result = "parsed"
except Exception as e:
    result = "refused (" + type(e).__name__ + ")"
print(result, hwm() - before)
"""


def main() -> None:
    mib = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.json")
        for name, item in SHAPES.items():
            n = int(mib * 2 ** 20)
            with open(path, "wb") as f:
                f.write(b'{"report":[' + b",".join([item] * (n // (len(item) + 1))) + b"]}")
            out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, check=True)
            result, growth = out.stdout.split(" ", 1) if out.stdout.startswith("parsed") else \
                (out.stdout.rsplit(" ", 1)[0], out.stdout.rsplit(" ", 1)[1])
            size = os.path.getsize(path) / 2 ** 20
            print(f"{name:<34} {size:5.1f} MiB: {result:<28} peak RSS +{float(growth):6.0f} MB "
                  f"= {float(growth) / size:4.1f}x the manifest")


if __name__ == "__main__":
    main()
