"""What this device is: architecture, CPU core and features, usable cores, memory, execution providers.

Standard library only, and cheap (a few small /proc and /sys reads), since load() calls it on every
bundle it opens. Features are named as Linux names them in /proc/cpuinfo (x86 `flags`, ARM `Features`),
the names target profiles use; on macOS they come from sysctl and are mapped to the same names. Where
nothing can be read, `features` is None: unknown, which the caller reports rather than guesses.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Sequence

# ARM's own cores (CPU implementer 0x41), by CPU part, as the Technical Reference Manuals number them.
ARM_PARTS = {
    0xd03: "cortex-a53", 0xd04: "cortex-a35", 0xd05: "cortex-a55", 0xd07: "cortex-a57", 0xd08: "cortex-a72",
    0xd09: "cortex-a73", 0xd0a: "cortex-a75", 0xd0b: "cortex-a76", 0xd0c: "neoverse-n1", 0xd0d: "cortex-a77",
    0xd40: "neoverse-v1", 0xd41: "cortex-a78", 0xd42: "cortex-a78ae", 0xd44: "cortex-x1", 0xd46: "cortex-a510",
    0xd47: "cortex-a710", 0xd48: "cortex-x2", 0xd49: "neoverse-n2", 0xd4f: "neoverse-v2",
}
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "armv7l", "armv7": "armv7l"}
# macOS on Apple silicon: sysctl hw.optional.* keys -> the Linux feature names profiles use
_DARWIN_ARM = {
    "hw.optional.neon": ("fp", "asimd"), "hw.optional.AdvSIMD": ("fp", "asimd"),
    "hw.optional.arm.FEAT_DotProd": ("asimddp",), "hw.optional.arm.FEAT_FP16": ("fphp", "asimdhp"),
    "hw.optional.arm.FEAT_I8MM": ("i8mm",), "hw.optional.arm.FEAT_BF16": ("bf16",),
    "hw.optional.armv8_crc32": ("crc32",), "hw.optional.arm.FEAT_LSE": ("atomics",),
    "hw.optional.arm.FEAT_RDM": ("asimdrdm",), "hw.optional.arm.FEAT_FHM": ("asimdfhm",),
}


@dataclass(frozen=True)
class DeviceInfo:
    """The device this process runs on, as far as it can be read."""

    architecture: str
    cpu: str = ""                              # ARM core names joined by '+', or the x86 model name; "" unknown
    features: frozenset[str] | None = None     # None: could not be read
    cores: int = 1                             # usable by this process (affinity, cgroup quota)
    memory_mb: int | None = None               # RAM, or the cgroup limit where lower
    available_mb: int | None = None            # available now (MemAvailable, or what the cgroup leaves)
    providers: tuple[str, ...] = field(default_factory=tuple)
    cpu_cores: tuple[str, ...] = ()            # each distinct ARM core name (big.LITTLE has two)

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "cpu": self.cpu,
                "features": sorted(self.features) if self.features is not None else None,
                "cores": self.cores, "memory_mb": self.memory_mb, "available_mb": self.available_mb,
                "providers": list(self.providers)}


def normalize_architecture(name: str) -> str:
    m = name.strip().lower()
    return _ARCH_ALIASES.get(m, m)


def machine() -> str:
    """platform.machine(), without importing platform (which load() would otherwise pay for)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str] | None, tuple[str, ...]]:
    """(cpu name, features, ARM core names) from /proc/cpuinfo text.

    x86 lists `flags` per processor (all alike); ARM lists `Features`, which on a big.LITTLE chip may
    differ between cores, so the features are those every core has: a thread may run on any of them."""
    features: frozenset[str] | None = None
    model, parts = "", []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        flags = fields.get("flags", fields.get("features"))
        if flags is not None:
            mine = frozenset(flags.split())
            features = mine if features is None else features & mine
        model = model or fields.get("model name", "")
        if fields.get("cpu implementer", "").lower() == "0x41" and "cpu part" in fields:
            try:
                part = int(fields["cpu part"], 16)
            except ValueError:
                continue
            name = ARM_PARTS.get(part, f"arm-{part:#x}")
            if name not in parts:
                parts.append(name)
    return ("+".join(parts) or model), features, tuple(parts)


def parse_darwin_sysctl(text: str, architecture: str) -> frozenset[str]:
    """Features from `sysctl` output (`key: value` lines) on macOS, named as Linux names them."""
    features: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if architecture == "aarch64":
            if value == "1" and key in _DARWIN_ARM:
                features.update(_DARWIN_ARM[key])
        elif key in ("machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.extfeatures"):
            for name in value.lower().split():  # AVX2 -> avx2, AVX512VNNI -> avx512_vnni as Linux spells it
                features.add(name.replace("avx512vnni", "avx512_vnni").replace("avx1.0", "avx").replace(".", "_"))
    return frozenset(features)


def parse_meminfo(text: str) -> tuple[int | None, int | None]:
    """(MemTotal, MemAvailable) in MB from /proc/meminfo text."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) // 1024  # kB -> MB
    return values.get("MemTotal"), values.get("MemAvailable", values.get("MemFree"))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cgroup_dirs(controller: str) -> list[str]:
    """Folders where this process's cgroup files for `controller` may be (v2 first, then v1)."""
    dirs = []
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            dirs.append("/sys/fs/cgroup" + path.rstrip("/"))
        elif controller in controllers.split(","):
            base = f"/sys/fs/cgroup/{controllers}"
            dirs += [base + path.rstrip("/"), base]  # inside a container the own cgroup is often the root
    return dirs


def cgroup_memory() -> tuple[int | None, int | None]:
    """(limit, usage) in MB from the memory cgroup, or None where there is no limit."""
    for d in _cgroup_dirs("memory"):
        for limit_file, usage_file in (("memory.max", "memory.current"),
                                       ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            limit = (_read(f"{d}/{limit_file}") or "").strip()
            if not limit:
                continue
            if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
                return None, None
            usage = (_read(f"{d}/{usage_file}") or "").strip()
            return int(limit) >> 20, (int(usage) >> 20 if usage.isdigit() else None)
    return None, None


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    for d in _cgroup_dirs("cpu"):
        quota = (_read(f"{d}/cpu.max") or "").split()
        if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit():
            return max(1, min(cores, -(-int(quota[0]) // int(quota[1]))))
        q, p = (_read(f"{d}/cpu.cfs_quota_us") or "").strip(), (_read(f"{d}/cpu.cfs_period_us") or "").strip()
        if q.isdigit() and p.isdigit() and int(p):
            return max(1, min(cores, -(-int(q) // int(p))))
    return max(1, cores)


def _darwin_features(architecture: str) -> frozenset[str] | None:
    import subprocess  # only on macOS

    keys = list(_DARWIN_ARM) if architecture == "aarch64" else [
        "machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.extfeatures"]
    try:
        out = subprocess.run(["sysctl", *keys], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_darwin_sysctl(out, architecture) or None


def detect(providers: Sequence[str] = ()) -> DeviceInfo:
    """Read this device. `providers`: the execution providers onnxruntime offers here (the caller passes
    onnxruntime.get_available_providers(), so that this module needs nothing but the standard library)."""
    architecture = normalize_architecture(machine())
    cpu, features = "", None
    parts: tuple[str, ...] = ()
    text = _read("/proc/cpuinfo")
    if text:
        cpu, features, parts = parse_cpuinfo(text)
    elif sys.platform == "darwin":
        features = _darwin_features(architecture)
    total, available = parse_meminfo(_read("/proc/meminfo") or "")
    limit, usage = cgroup_memory()
    if limit is not None:
        total = min(total, limit) if total else limit
        if usage is not None:
            available = min(available, limit - usage) if available is not None else limit - usage
    return DeviceInfo(architecture=architecture, cpu=cpu, features=features, cores=usable_cores(),
                      memory_mb=total, available_mb=available, providers=tuple(providers), cpu_cores=parts)


def detect_with_onnxruntime() -> DeviceInfo:
    """detect(), with the execution providers this onnxruntime offers."""
    import onnxruntime

    return detect(onnxruntime.get_available_providers())
