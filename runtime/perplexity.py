"""Perplexity of a language-model bundle on text: the exponential of the mean negative log-likelihood of
each token given the ones before it, in consecutive windows of `window` tokens (each window starts with an
empty cache, so its first token is only context)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .generate import KVRunner

if TYPE_CHECKING:
    from .session import Session


@dataclass
class Perplexity:
    perplexity: float
    tokens: int            # tokens scored
    windows: int
    window: int
    mean_nll: float


def perplexity(session: Session, ids: Sequence[int], window: int = 128) -> Perplexity:
    """Perplexity of the bundle's model on the token ids `ids`."""
    if window < 2:
        raise InputError(f"window must be at least 2 tokens, got {window}")
    ids = [int(t) for t in ids]
    if len(ids) < 2:
        raise InputError("the text has fewer than 2 tokens: nothing to score")
    runner = KVRunner(session, window, window)
    total, count, windows = 0.0, 0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            break
        runner.reset()
        logits = runner.step(chunk).astype(np.float64)[:-1]
        top = logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        target = np.asarray(chunk[1:])
        total += float((logz - logits[np.arange(len(target)), target]).sum())
        count += len(target)
        windows += 1
    mean = total / count
    return Perplexity(math.exp(mean), count, windows, window, mean)
