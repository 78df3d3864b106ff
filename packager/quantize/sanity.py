"""Data that loads but is probably wrong: NaN or infinite inputs, and labels outside the model's classes. Both
are accepted (a model may mean them) with a warning naming the array and the samples."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from ..datasets import Samples


class DataWarning(UserWarning):
    """Calibration or evaluation data that is probably not what was meant."""


def _samples_text(indices: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:5])
    more = f" and {len(indices) - 5} more" if len(indices) > 5 else ""
    return f"sample{'s' if len(indices) > 1 else ''} {shown}{more}"


def warn_nonfinite(samples: Samples, what: str) -> None:
    """Warn once per array that holds NaN or infinite values, naming the samples that do."""
    bad: dict[str, list[int]] = {}
    for i, feeds in enumerate(samples.feeds):
        for name, array in feeds.items():
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad.setdefault(name, []).append(i)
    source = os.path.basename(os.path.normpath(samples.source))
    for name, indices in bad.items():
        warnings.warn(f"{what} {source}: array {name!r} holds NaN or infinite values in {_samples_text(indices)}; "
                      "the model's outputs on them are likely NaN too", DataWarning, stacklevel=3)


def warn_labels(samples: Samples, outputs: Sequence[np.ndarray]) -> None:
    """Warn when labels fall outside the classes of the first output ([batch, classes] scores): accuracy then
    counts those samples as wrong whatever the model does."""
    if samples.labels is None or not outputs:
        return
    first = np.asarray(outputs[0])
    if first.ndim != 2:
        return
    classes = first.shape[1]
    labels = np.asarray(samples.labels).ravel()
    whole = labels.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(whole) | (whole < 0) | (whole >= classes) | (whole != np.round(whole)))
    if bad.size:
        values = ", ".join(str(v) for v in labels[bad[:5]].tolist())
        source = os.path.basename(os.path.normpath(samples.source))
        warnings.warn(f"eval data {source}: array 'labels' has values outside the model's {classes} classes (0 to "
                      f"{classes - 1}) in {_samples_text(bad.tolist())} ({values}); accuracy counts them as wrong",
                      DataWarning, stacklevel=3)
