"""Reading intermediate activations with onnxruntime: the model is copied with the wanted tensors as its
graph outputs (so onnxruntime runs only what they need), then run on the calibration samples, several at
a time when the model's inputs have a free batch axis."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from edgepack.runtime.errors import ModelError

from .graph import infer_shapes


BATCH = 16  # samples per onnxruntime run when they can be stacked


class Probe:
    """An onnxruntime session over `model` that returns the tensors `names` (and only computes those)."""

    def __init__(self, model: onnx.ModelProto, names: Iterable[str]) -> None:
        self.names = list(dict.fromkeys(names))
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        outputs = {o.name: o for o in probe.graph.output}
        types = _elem_types(model) if any(n not in outputs for n in self.names) else {}
        wanted = [outputs.get(n) or onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None)
                  for n in self.names]
        del probe.graph.output[:]
        probe.graph.output.extend(wanted)
        self.batchable = all(i.type.tensor_type.shape.dim[0].HasField("dim_param")
                             for i in probe.graph.input if i.type.tensor_type.shape.dim)
        if probe.ByteSize() >= (1 << 31) - 1:
            raise ModelError("reading activations needs a model under 2 GB; prune without --reconstruct and with "
                             "--prune-criterion l1 or l2")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(self.names, feeds)))

    def each(self, samples: Sequence[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        for (values,) in run_together([self], samples):
            yield values


def run_together(probes: Sequence[Probe], samples: Sequence[dict[str, np.ndarray]]
                 ) -> Iterator[tuple[dict[str, np.ndarray], ...]]:
    """Each probe's tensors on the same feeds: several samples stacked on the batch axis per run when every
    probe allows it; if a stacked run fails, one sample at a time from there on."""
    stack_ok = all(p.batchable for p in probes)
    i = 0
    while i < len(samples):
        group = list(samples[i:i + BATCH]) if stack_ok else [samples[i]]
        stacked = _stack(group) if len(group) > 1 else None
        if stacked is not None:
            try:
                yield tuple(p.run(stacked) for p in probes)
                i += len(group)
                continue
            except Exception:
                stack_ok = False
        yield tuple(p.run(samples[i]) for p in probes)
        i += 1


def _stack(group: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    first = group[0]
    if any(set(g) != set(first) or any(g[k].shape[1:] != first[k].shape[1:] or g[k].ndim == 0 for k in g)
           for g in group):
        return None
    return {k: np.concatenate([g[k] for g in group]) for k in first}


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = infer_shapes(model)
    g = inferred.graph
    return {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.input, *g.output]
            if vi.type.HasField("tensor_type")}


def channel_means(model: onnx.ModelProto, tracks: dict[str, tuple[int, int]],
                  samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{tensor: mean |value| of each position along its channel axis}, for tracks {tensor: (axis, rank)}."""
    probe = Probe(model, tracks)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for values in probe.each(samples):
        for name, v in values.items():
            axis = tracks[name][0]
            moved = np.moveaxis(np.abs(np.asarray(v, np.float64)), axis, -1).reshape(-1, v.shape[axis])
            sums[name] = sums.get(name, 0.0) + moved.sum(axis=0)
            counts[name] = counts.get(name, 0) + moved.shape[0]
    return {n: sums[n] / max(counts[n], 1) for n in sums}
