"""onnxruntime's side of a profile: SessionOptions (threads, optimization level, arena, prepacking) and which
execution providers to ask for. The runtime's session.py and the packager's checks both build their
onnxruntime sessions from here, so a packaged model is checked with the options it will run under."""

from __future__ import annotations

from collections.abc import Sequence

import onnxruntime as ort

from .profile import Profile
from .host import usable_cpus

# a profile's session.graph_optimization_level -> onnxruntime's enum (the one place that names them)
OPT_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(profile: Profile, threads: int | None = None, lean: bool | None = None) -> ort.SessionOptions:
    """onnxruntime SessionOptions for a profile (the same a plain onnxruntime user would set).

    lean (default: the profile's memory.lean) trades speed for memory: no weight prepacking, no memory
    arena, no memory pattern (docs/TARGETS.md gives its measured cost). The profile's thread counts are
    capped at the CPUs this process may use: more only makes threads wait for each other (a bundle that asks
    for 256 on two cores took 10 s to load); `threads` is taken as given."""
    s = profile.session
    lean = profile.memory.lean if lean is None else lean
    cpus = usable_cpus()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads if threads is not None else min(s.intra_op_threads, cpus)
    so.inter_op_num_threads = min(s.inter_op_threads, cpus)
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if s.execution_mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.graph_optimization_level = OPT_LEVELS[s.graph_optimization_level]
    so.enable_cpu_mem_arena = s.memory_arena and not lean
    so.enable_mem_pattern = s.memory_pattern and not lean
    if lean or not s.prepacking:
        so.add_session_config_entry("session.disable_prepacking", "1")
    return so


def choose_providers(profile: Profile, available: Sequence[str]) -> tuple[list[str], str | None]:
    """The profile's providers that this onnxruntime build has, in order, with CPU last as a fallback; and,
    when the most preferred one is missing, a note that says so."""
    chosen = [p for p in profile.providers if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    missing = [p for p in profile.providers if p not in available]
    if not missing or profile.providers[0] not in missing:
        return chosen, None
    return chosen, (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not available in this "
                    f"onnxruntime (it has {', '.join(available) or 'none'})")
