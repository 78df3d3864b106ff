"""Reading intermediate activations with onnxruntime: the model is copied with the wanted tensors added
as graph outputs, then run on each calibration sample."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from edgepack.runtime.errors import ModelError

from .graph import infer_shapes


class Probe:
    """An onnxruntime session over `model` that also returns the tensors `names`."""

    def __init__(self, model: onnx.ModelProto, names: Iterable[str]) -> None:
        self.names = list(dict.fromkeys(names))
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        present = {o.name for o in probe.graph.output}
        missing = [n for n in self.names if n not in present]
        if missing:
            types = _elem_types(model)
            for n in missing:
                probe.graph.output.append(onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None))
        if probe.ByteSize() >= (1 << 31) - 1:
            raise ModelError("reading activations needs a model under 2 GB; prune without --reconstruct and with "
                             "--prune-criterion l1 or l2")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(self.names, feeds)))

    def each(self, samples: Sequence[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        for feeds in samples:
            yield self.run(feeds)


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
