"""Convolution as a matrix product: the input patches each output position of a Conv reads.

For a 2-D Conv with weight W[O, C, kh, kw], output position (n, i, j) is W.reshape(O, -1) @ patch, where
patch = X_padded[n, :, i*sh + a*dh, j*sw + b*dw] over a < kh, b < kw, flattened in (C, kh, kw) order. A 1-D
Conv is the 2-D case with a height of 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import onnx

from .graph import attr


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right

    @classmethod
    def of(cls, node: onnx.NodeProto, kernel: tuple[int, ...], spatial: tuple[int, ...]) -> ConvGeometry | None:
        """None for what this does not cover (3-D convolutions)."""
        if len(kernel) not in (1, 2):
            return None
        n = len(kernel)
        strides = list(attr(node, "strides", [1] * n))
        dilations = list(attr(node, "dilations", [1] * n))
        pads = list(attr(node, "pads", [0] * 2 * n))
        auto = attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * 2 * n
            for i in range(n):
                out = -(-spatial[i] // strides[i])
                total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i], 0)
                small, big = total // 2, total - total // 2
                pads[i], pads[i + n] = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            pads = [0] * 2 * n
        if n == 1:
            return cls((1, kernel[0]), (1, strides[0]), (1, dilations[0]), (0, pads[0], 0, pads[1]))
        # n == 2 here: a 2-D Conv's kernel, strides and dilations each have two entries
        pair = cast("tuple[int, int]", tuple(kernel))
        return cls(pair, cast("tuple[int, int]", tuple(strides)), cast("tuple[int, int]", tuple(dilations)),
                   (pads[0], pads[1], pads[2], pads[3]))


def as_2d(x: np.ndarray) -> np.ndarray:
    """[N, C, L] -> [N, C, 1, L]; 4-D unchanged."""
    return x[:, :, None, :] if x.ndim == 3 else x


def patches(x: np.ndarray, geo: ConvGeometry, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The patches of one sample x[C, H, W] at output positions (rows[r], cols[r]): [R, C*kh*kw]."""
    top, left, bottom, right = geo.pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.strides, geo.dilations
    hi = rows[:, None] * sh + np.arange(kh)[None, :] * dh          # [R, kh]
    wi = cols[:, None] * sw + np.arange(kw)[None, :] * dw          # [R, kw]
    p = xp[:, hi[:, :, None], wi[:, None, :]]                      # [C, R, kh, kw]
    return p.transpose(1, 0, 2, 3).reshape(len(rows), -1)
