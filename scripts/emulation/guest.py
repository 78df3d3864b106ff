"""The aarch64 half of scripts/arm64-check, run under qemu-aarch64 with only the runtime installed.

    python guest.py WORK     # reads WORK/cases.json and WORK/bundles/, writes WORK/arm/*.npz, prints a report

It checks, in order, and stops at the first failure: the machine is aarch64 and its CPU features (from
/proc/cpuinfo, and from the kernel's hwcaps, which QEMU sets for the emulated CPU) agree; nothing but the
runtime and its three dependencies can be imported; every bundle verifies, loads and runs; the delta in
WORK/delta applies to digits-fp32 and gives the new bundle byte for byte.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import sys
import time

_T0 = time.perf_counter()
import edgepack.runtime as rt  # noqa: E402  (timed: importing onnxruntime is most of the start-up)

IMPORT_S = time.perf_counter() - _T0
ALLOWED = {"numpy", "onnxruntime", "zstandard", "edgepack"}
STARTUP = {"__main__", "sitecustomize", "usercustomize"}  # Debian's python3 runs a sitecustomize of its own
ABSENT = ("onnx", "torch", "click", "sklearn", "google.protobuf", "edgepack.packager", "edgepack.cli")
# AT_HWCAP bits of arm64 Linux (arch/arm64/include/uapi/asm/hwcap.h), as /proc/cpuinfo names them
HWCAP_NAMES = ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp",
               "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512",
               "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg"]
AT_HWCAP = 16


def fail(message: str) -> None:
    print(f"aarch64: FAILED: {message}")
    sys.exit(1)


def cpuinfo() -> tuple[list[str], str]:
    """Features and CPU part of the first processor in /proc/cpuinfo."""
    features, part = [], "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "Features" and not features:
                features = value.split()
            elif key == "CPU part" and part == "?":
                part = value.strip()
    return features, part


def hwcaps() -> list[str]:
    bits = ctypes.CDLL(None).getauxval(AT_HWCAP)
    return [name for i, name in enumerate(HWCAP_NAMES) if bits >> i & 1]


def detect_device(cpuinfo_features: list[str]) -> str:
    """What edgepack's own device detection (edgepack.runtime.device.detect()) says: it must report aarch64
    and every feature /proc/cpuinfo lists."""
    from edgepack.runtime import device

    found = device.detect()
    arch, features = found.architecture, set(found.features or ())
    if arch != "aarch64":
        fail(f"edgepack.runtime.device.detect() says architecture {arch!r}, not 'aarch64'")
    missing = sorted(set(cpuinfo_features) - features)
    if missing:
        fail(f"edgepack.runtime.device.detect() misses the CPU features {missing} that /proc/cpuinfo lists")
    return f"edgepack.runtime.device.detect(): {arch}, features {' '.join(sorted(features))}, {found.cores} cores"


def check_device() -> list[str]:
    machine = platform.machine()
    if machine != "aarch64":
        fail(f"platform.machine() is {machine!r}, not 'aarch64'")
    features, part = cpuinfo()
    kernel = hwcaps()
    claimed = [f for f in features if f not in kernel]
    if claimed:
        fail(f"/proc/cpuinfo claims {claimed}, which the emulated CPU lacks (hwcaps: {' '.join(kernel)})")
    return [f"platform.machine(): {machine}; /proc/cpuinfo: CPU part {part}, features {' '.join(features)}",
            f"hwcaps of the emulated CPU: {' '.join(kernel)}", detect_device(features)]


def check_isolation() -> str:
    present = [m for m in ABSENT if _findable(m)]
    if present:
        fail(f"{present} can be imported; the device must hold only the runtime and its dependencies")
    stdlib = set(sys.stdlib_module_names)
    foreign = sorted({m.split(".")[0] for m in sys.modules} - stdlib - ALLOWED - STARTUP)
    if foreign:
        fail(f"importing edgepack.runtime pulled in {foreign}")
    return (f"isolation: {', '.join(ABSENT)} not importable; edgepack.runtime imports only "
            f"{', '.join(sorted(ALLOWED - {'edgepack'}))} (numpy {_version('numpy')}, onnxruntime "
            f"{_version('onnxruntime')}, zstandard {_version('zstandard')}); import took {IMPORT_S:.1f}s")


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is absent
        return False


def _version(name: str) -> str:
    return getattr(sys.modules[name], "__version__", "?")


def run_case(work: str, name: str) -> str:
    import numpy as np

    bundle = os.path.join(work, "bundles", f"{name}.edgepack")
    t0 = time.perf_counter()
    with rt.open_bundle(bundle) as b:
        problems = b.verify()
    if problems:
        fail(f"{name}: verify found {problems}")
    t1 = time.perf_counter()
    session = rt.load(bundle)
    if session.profile.name != session.manifest.target.get("name"):
        fail(f"{name}: ran with profile {session.profile.name!r}, not the bundle's own")
    t2 = time.perf_counter()
    with np.load(os.path.join(work, "bundles", f"{name}.feeds.npz")) as data:
        feeds = {k: data[k] for k in data.files}
    outputs = session.run(feeds)
    t3 = time.perf_counter()
    np.savez(os.path.join(work, "arm", f"{name}.npz"), **outputs)
    layout = getattr(session.manifest, "layout", "compressed")
    mapped = f" ({layout} layout, {session.stats.mapped_bytes} bytes mapped)" if layout != "compressed" else ""
    return (f"{name}{mapped}: verified {t1 - t0:.1f}s, loaded for {session.profile.name} {t2 - t1:.1f}s, "
            f"ran {t3 - t2:.1f}s (emulated: times say nothing of a real board)")


def main(work: str) -> None:
    for line in [*check_device(), check_isolation()]:
        print(line)
    os.makedirs(os.path.join(work, "arm"), exist_ok=True)
    with open(os.path.join(work, "cases.json")) as f:
        for case in json.load(f):
            print(run_case(work, case["name"]))
    print(apply_case(work))


def apply_case(work: str) -> str:
    """Apply WORK/delta/update.edgedelta to digits-fp32 with the runtime alone; the result must be the new
    bundle exactly, and the base unchanged."""
    import hashlib

    folder = os.path.join(work, "delta")
    with open(os.path.join(folder, "expected.json")) as f:
        expected = json.load(f)
    base = os.path.join(work, "bundles", "digits-fp32.edgepack")
    with open(base, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    out = os.path.join(folder, "applied.edgepack")
    t0 = time.perf_counter()
    rt.apply_delta(base, os.path.join(folder, "update.edgedelta"), out)
    t1 = time.perf_counter()
    with open(out, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != expected["sha256"]:
            fail("delta: the applied bundle is not the new one")
    with open(base, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != before:
            fail("delta: applying it changed the base")
    return (f"delta: {expected['delta_bytes']:,} B for a {expected['bundle_bytes']:,} B bundle, applied in "
            f"{t1 - t0:.1f}s to the exact new bundle")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python guest.py WORK")
    main(sys.argv[1])
