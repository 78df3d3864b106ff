"""Does this device match the profile a bundle was built for? What cannot work is refused; what differs is
reported, all of it in one message.

Refused (unless forced): a CPU of the profile's architecture without one of the profile's
`required_features` (for example x86-64-avx512-vnni's VNNI, without which an int8 model quantized without
reduce_range loses accuracy to saturation). An ONNX graph itself runs on any architecture, so another
architecture is a difference, not a refusal: a bundle for jetson-orin-nano runs on an x86 laptop, on its CPU,
with one warning. Feature names differ between architectures, so required features are checked only on a
CPU of the profile's architecture.

Reported: another architecture, CPU core or feature set; fewer cores than the profile's (threads are capped
to the cores there are); less RAM than the profile describes, or less available than its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .device import ARM_PARTS, DeviceInfo
from .errors import DeviceMismatch
from .profile import Profile

# A device reporting less than this share of the profile's RAM is a different board (a 4 GB Pi reports
# about 3.8 GB: firmware and GPU keep the rest).
RAM_TOLERANCE = 0.8


class TargetWarning(RuntimeWarning):
    """This device differs from the bundle's profile, or its preferred execution provider is missing: the
    model runs, but its measured figures may not hold here. load() gives at most one per session."""


@dataclass
class Comparison:
    refusals: list[str] = field(default_factory=list)   # what cannot work here
    notes: list[str] = field(default_factory=list)      # what differs from the profile
    threads: int | None = None                           # intra-op threads to use, when capped


def missing_required(profile: Profile, device: DeviceInfo) -> list[str]:
    """Required features (each 'a' or 'a|b') this device's CPU lacks; none if it cannot be told."""
    if device.features is None or device.architecture != profile.device.architecture:
        return []
    return [r for r in profile.device.required_features if not set(r.split("|")) & device.features]


def compare(profile: Profile, device: DeviceInfo) -> Comparison:
    """What stands between `profile` and `device`."""
    out = Comparison()
    spec = profile.device
    if device.architecture != spec.architecture:
        out.notes.append(f"this CPU is {device.architecture}, not {spec.architecture}")
    elif device.features is None:
        if spec.required_features:
            out.notes.append(f"this CPU's features could not be read, so {', '.join(spec.required_features)} "
                             "went unchecked")
    else:
        for req in missing_required(profile, device):
            out.refusals.append(f"the profile requires {' or '.join(req.split('|'))}, which this CPU lacks")
        lacking = [f for f in spec.cpu_features if f not in device.features]
        if lacking:
            out.notes.append(f"this CPU lacks {', '.join(lacking)}, which the profile's CPU has")
    if spec.cpu in ARM_PARTS.values() and device.cpu_cores and spec.cpu not in device.cpu_cores:
        out.notes.append(f"this CPU is {device.cpu}, not {spec.cpu}")
    if spec.cores and device.cores < spec.cores:
        out.notes.append(f"{device.cores} cores are usable here, the profile's device has {spec.cores}")
    threads = profile.session.intra_op_threads
    if threads > device.cores:
        out.threads = device.cores
        out.notes.append(f"onnxruntime threads capped at {device.cores} (the profile asks for {threads})")
    _compare_memory(profile, device, out)
    return out


def _compare_memory(profile: Profile, device: DeviceInfo, out: Comparison) -> None:
    ram, budget = profile.memory.ram_mb, profile.memory.budget_mb
    if ram and device.memory_mb is not None and device.memory_mb < RAM_TOLERANCE * ram:
        out.notes.append(f"this device has {device.memory_mb} MB of memory, the profile's has {ram} MB")
    if budget and device.available_mb is not None and device.available_mb < budget:
        out.notes.append(f"only {device.available_mb} MB of memory is available, less than the profile's "
                         f"budget of {budget} MB")


def enforce(comparison: Comparison, profile: Profile, path: str, force: bool) -> list[str]:
    """Raise DeviceMismatch for what cannot work unless forced; return the notes to report."""
    if comparison.refusals and not force:
        raise DeviceMismatch(f"{path}: built for target {profile.name!r}: {'; '.join(comparison.refusals)}. "
                             "Package it for this device (`edgepack targets detect` names the closest profile), "
                             "or pass --force (force=True) to run it anyway")
    forced = [f"forced to run although {r}" for r in comparison.refusals]
    return forced + comparison.notes


def closest(profiles: list[Profile], device: DeviceInfo) -> Profile | None:
    """The profile that describes this device best: none refused, fewest differences, then the most
    specific (the most CPU features it names)."""
    ranked = [(len(c.notes), -len(p.device.cpu_features), p.name, p)
              for p in profiles for c in [compare(p, device)] if not c.refusals]
    return min(ranked, key=lambda r: r[:3])[3] if ranked else None
