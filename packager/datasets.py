"""Sample data for calibration and evaluation: the two formats `--calibration` and `--eval` take.

* an `.npz` whose arrays are keyed by input name, samples along the first axis; each sample is fed as a
  batch of one (the leading axis kept, with length 1), except for a scalar input (rank 0, such as a sample
  rate), whose array holds one value per sample;
* a folder of `.npz` files, each one a complete set of feeds used as is (for models with several inputs,
  state inputs or fixed shapes), in file-name order.

An array named `labels` holds labels (one per sample) and is never fed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from collections.abc import Collection, Iterator, Sequence

import numpy as np

from edgepack.runtime.errors import OptionError
from edgepack.runtime.feeds import read_npz

LABELS = "labels"


@dataclass
class Samples:
    """Feeds for a model, one dict per sample, and labels when the data had them."""

    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.feeds)

    def head(self, n: int) -> Samples:
        return Samples(self.feeds[:n], None if self.labels is None else self.labels[:n], self.source)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    return read_npz(path, "samples")


def _check_names(feeds: dict[str, np.ndarray], inputs: Sequence[str], where: str) -> None:
    missing = [n for n in inputs if n not in feeds]
    unknown = [k for k in feeds if k not in inputs]
    if missing or unknown:
        raise OptionError(f"{where}: the model's inputs are {list(inputs)}; the data lacks {missing} and has "
                          f"unknown arrays {unknown} (name the labels array {LABELS!r})")


def load_samples(path: str | os.PathLike, inputs: Sequence[str], limit: int | None = None,
                 scalars: Collection[str] = ()) -> Samples:
    """Read samples for a model whose inputs are named `inputs`; `scalars`: those of rank 0, which an npz of
    samples gives one value per sample (fed as a 0-d array)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if not files:
            raise OptionError(f"{path}: the folder holds no .npz files")
        feeds, labels = [], []
        for name in files[:limit]:
            data = _read_npz(os.path.join(path, name))
            label = data.pop(LABELS, None)
            _check_names(data, inputs, os.path.join(path, name))
            feeds.append(data)
            if label is not None:
                labels.append(np.asarray(label).reshape(-1))
        if labels and len(labels) != len(feeds):
            raise OptionError(f"{path}: some files have {LABELS!r} and some do not")
        return Samples(feeds, np.concatenate(labels) if labels else None, path)
    if not os.path.isfile(path):
        raise OptionError(f"{path}: no such file or folder of samples")
    data = _read_npz(path)
    file_labels = data.pop(LABELS, None)
    _check_names(data, inputs, path)
    counts = {k: v.shape[0] if v.ndim else 0 for k, v in data.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise OptionError(f"{path}: every array needs the same number of samples along its first axis; "
                          f"got {counts}")
    n = next(iter(counts.values()))
    if limit is not None:
        n = min(n, limit)
    feeds = [{k: v[i, ...] if k in scalars and v.ndim == 1 else v[i:i + 1] for k, v in data.items()} for i in range(n)]
    if file_labels is not None:
        file_labels = np.asarray(file_labels)
        if file_labels.shape[0] < n:
            raise OptionError(f"{path}: {file_labels.shape[0]} labels for {n} samples")
        file_labels = file_labels[:n]
    return Samples(feeds, file_labels, path)
