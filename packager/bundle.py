"""The encode step and the bundle it writes: split the model into graph and tensors, code each tensor
losslessly (edgepack.packager.encode), write the bundle atomically (edgepack.packager.writer), and warn when it is
larger than the target budgets for storage. The last step of the pipeline (pipeline.py): it takes the model, the
provenance and the report the steps before it made, and returns what it wrote.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import onnx

from edgepack.runtime.compat import TargetWarning
from edgepack.runtime.format import BINDING_MAPPED, LAYOUT_MAPPED, Codec
from edgepack.runtime.profile import Profile
from edgepack.version import __version__

from . import report_keys as keys
from .encode import Encoded, encode
from .skeleton import Split, SplitTensor, split_model
from .source import Source
from .writer import BundleWriter


@dataclass
class PackageResult:
    """What package() wrote, and what it cost."""

    path: str
    bundle_bytes: int
    source_bytes: int
    raw_bytes: int
    target: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Bundle bytes over source model bytes."""
        return self.bundle_bytes / self.source_bytes if self.source_bytes else float("nan")


def _encode_all(split: Split, level: int, frame_bytes: int, threads: int
                ) -> Iterator[tuple[SplitTensor | None, Encoded]]:
    """Yield (tensor or None for the graph, Encoded) in bundle order, encoding ahead on `threads` threads."""
    items = [None, *split.tensors]
    with ThreadPoolExecutor(threads) as tensor_pool, ThreadPoolExecutor(threads) as frame_pool:
        def job(item: SplitTensor | None) -> Encoded:
            if item is None:
                return encode(memoryview(split.skeleton), "uint8", level, frame_bytes, pool=frame_pool)
            codecs = [Codec.RAW] if item.binding == BINDING_MAPPED else None  # mapped: used in place, raw
            return encode(item.data, item.dtype, level, frame_bytes, codecs, pool=frame_pool)

        pending: deque[tuple[SplitTensor | None, Any]] = deque()
        it = iter(items)
        for item in it:
            pending.append((item, tensor_pool.submit(job, item)))
            if len(pending) >= 2 * threads:
                break
        while pending:
            item, fut = pending.popleft()
            yield item, fut.result()
            for nxt in itertools.islice(it, 1):   # the next item, if any
                pending.append((nxt, tensor_pool.submit(job, nxt)))


def _codec_counts(encoded: list[Encoded]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in encoded:
        counts[e.codec] = counts.get(e.codec, 0) + 1
    return dict(sorted(counts.items()))


def write_bundle(source: Source, model: onnx.ModelProto, output: str | os.PathLike, profile: Profile,
                 steps: list[dict[str, Any]], report: dict[str, Any], level: int, frame_bytes: int,
                 threads: int) -> PackageResult:
    """Split, encode and write `model`; `steps` and `report` come from the steps that ran before. The profile's
    codec.layout says how: `mapped` stores large initializers raw at page-aligned offsets (docs/FORMAT.md)."""
    mapped = profile.codec.layout == LAYOUT_MAPPED
    split = split_model(model, profile.codec.mapped_min_bytes if mapped else None)
    page = profile.codec.mapped_alignment if mapped else None
    encoded_all: list[Encoded] = []
    with BundleWriter(output) as writer:
        for tensor, enc in _encode_all(split, level, frame_bytes, threads):
            encoded_all.append(enc)
            if tensor is None:
                writer.add_graph(enc)
            else:
                writer.add_tensor(tensor.name, tensor.dtype, tensor.shape, enc, tensor.binding, tensor.splice,
                                  page if tensor.binding == BINDING_MAPPED else None)
        raw = sum(e.raw_length for e in encoded_all)
        stored = sum(e.length for e in encoded_all)
        steps = [*steps, {"name": "encode", "options": {"level": level, "frame_bytes": frame_bytes}}]
        provenance = {
            "source": {"name": source.name, "kind": source.kind, "sha256": source.sha256, "bytes": source.size},
            "edgepack_version": __version__,
            "steps": steps,
        }
        report = {**report, "lossless": {"tensors": len(split.tensors), "raw_bytes": raw, "stored_bytes": stored,
                                         "codecs": _codec_counts(encoded_all[1:])}}
        if mapped and not any(t.binding == BINDING_MAPPED for t in split.tensors):
            report[keys.WARNINGS] = [*report.get(keys.WARNINGS, []), (
                f"--layout mapped mapped no tensor: no main-graph initializer has {profile.codec.mapped_min_bytes} "
                "bytes or more (weights held in Constant nodes or inside subgraphs are always coded), so the "
                "bundle loads as a compressed one would")]
        layout = {"name": LAYOUT_MAPPED, "alignment": page} if mapped else None
        size = writer.finish(target=profile.to_dict(), provenance=provenance, report=report, layout=layout)
    return PackageResult(os.fspath(output), size, source.size, raw, profile.name, report)


def check_storage(result: PackageResult, profile: Profile) -> None:
    """Warn when the bundle is larger than the storage the target profile budgets for bundles."""
    budget = profile.memory.storage_mb
    if budget is not None and result.bundle_bytes > budget * 2**20:
        warnings.warn(f"{result.path} is {result.bundle_bytes / 2**20:.1f} MB, over the {budget} MB of storage "
                      f"target {profile.name!r} budgets for bundles (memory.storage_mb)", TargetWarning,
                      stacklevel=3)


__all__ = ["PackageResult", "write_bundle", "check_storage"]
