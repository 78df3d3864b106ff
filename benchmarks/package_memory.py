"""Peak memory of packaging: the RSS of `edgepack package` and every process it starts, summed at each moment.

`/usr/bin/time -v` reports the largest single process, which understates a packager that runs part of its work
in a child process (the Hugging Face import computes transformers' reference logits in one); this samples the
whole process tree every 50 ms (Linux /proc) and prints the largest sum, with the source's size and the ratio.

    python benchmarks/package_memory.py HF_FOLDER_OR_MODEL [-- edgepack package options, e.g. --quantize int4-weight]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS")), 0.0)
    except OSError:
        return 0.0


def _tree(root: int) -> list[int]:
    """root and its descendants, from each process's parent id in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    source, options = sys.argv[1], [a for a in sys.argv[2:] if a != "--"]
    size = sum(os.path.getsize(os.path.join(source, f)) for f in os.listdir(source)
               if f.endswith(".safetensors")) if os.path.isdir(source) else os.path.getsize(source)
    edgepack = os.path.join(os.path.dirname(sys.executable), "edgepack")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([edgepack, "package", source, "-o", os.path.join(tmp, "b.edgepack"), *options],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak, t0 = 0.0, time.perf_counter()
        while proc.poll() is None:
            peak = max(peak, sum(_rss_mb(p) for p in _tree(proc.pid)))
            time.sleep(0.05)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode:
            raise SystemExit(f"edgepack package failed: {err.strip().splitlines()[-1:]}")
    print(f"{os.path.basename(os.path.normpath(source))} {' '.join(options) or '(defaults)'}: peak RSS of the "
          f"process tree {peak:.0f} MB = {peak * 2**20 / size:.1f}x the {size / 1e6:.1f} MB source "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
