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
from .llm_record import MAX_TOKEN_ID

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
    bad = next((t for t in ids if not 0 <= t < MAX_TOKEN_ID), None)
    if bad is not None:
        raise InputError(f"token id {bad} is not a valid token id (0 to {MAX_TOKEN_ID - 1})")
    span = min(window, len(ids))  # a window longer than the text needs no cache beyond it
    runner = KVRunner(session, span, span)
    runner.check_ids(ids, "token id")
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
        if int(target.max()) >= logits.shape[1]:  # the tokenizer's ids and the model's vocabulary disagree
            raise InputError(f"{session.path}: token id {int(target.max())} is beyond the model's "
                             f"{logits.shape[1]} logits; the text's ids do not fit this model's vocabulary")
        total += float((logz - logits[np.arange(len(target)), target]).sum())
        count += len(target)
        windows += 1
    mean = total / count
    return Perplexity(math.exp(mean), count, windows, window, mean)
