"""Blockwise 4-bit weights in onnxruntime's MatMulNBits layout, by round-to-nearest or by GPTQ.

A weight W [N out, K in] is cut into blocks of `block` consecutive inputs per output; each block has a float
scale and a 4-bit zero point, and w ~= (q - zero) * scale with q in 0..15. Layout (MatMulNBits, bits 4):
    B            uint8 [N, K / block, block / 2]   two values per byte, the first in the low nibble
    scales       float [N * K / block]
    zero_points  uint8 [N * ceil((K / block) / 2)] two per byte, low nibble first

GPTQ (Frantar et al., 2022; the data-aware method onnxruntime's 4-bit quantizer offers through Intel's
neural-compressor) quantizes one input column at a time and spreads each column's rounding error over the
columns not yet quantized, weighted by the inverse Hessian H = 2 X^T X of the layer's calibration inputs X,
so that the layer's outputs on such inputs change least. Here it is written in numpy, so packaging needs no
other package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QMAX = 15


@dataclass
class Quantized4:
    q: np.ndarray          # uint8 [N, K] values 0..15
    scales: np.ndarray     # float32 [N, K / block]
    zeros: np.ndarray      # uint8 [N, K / block] values 0..15
    block: int

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, scales, zero_points) as MatMulNBits reads them."""
        n, k = self.q.shape
        nb = k // self.block
        b = (self.q[:, 0::2] | (self.q[:, 1::2] << 4)).astype(np.uint8).reshape(n, nb, self.block // 2)
        z = self.zeros
        if nb % 2:
            z = np.concatenate([z, np.zeros((n, 1), np.uint8)], axis=1)
        zp = (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
        return b, self.scales.astype(np.float32).reshape(-1), zp

    def dequantized(self) -> np.ndarray:
        s = np.repeat(self.scales, self.block, axis=1)
        z = np.repeat(self.zeros.astype(np.float32), self.block, axis=1)
        return ((self.q.astype(np.float32) - z) * s).astype(np.float32)

    @property
    def bits_per_weight(self) -> float:
        b, s, z = self.packed()
        return 8.0 * (b.nbytes + s.nbytes + z.nbytes) / self.q.size


def _grid(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of each row of `w` [N, block] (asymmetric, the range widened to include 0)."""
    lo = np.minimum(w.min(axis=1), 0.0)
    hi = np.maximum(w.max(axis=1), 0.0)
    scale = (hi - lo) / QMAX
    scale = np.where(scale == 0, 1.0, scale)
    zero = np.clip(np.round(-lo / scale), 0, QMAX)
    return scale, zero


def rtn(w: np.ndarray, block: int) -> Quantized4:
    """Round-to-nearest of W [N, K]."""
    n, k = w.shape
    blocks = w.reshape(n * (k // block), block).astype(np.float64)
    scale, zero = _grid(blocks)
    q = np.clip(np.round(blocks / scale[:, None]) + zero[:, None], 0, QMAX).astype(np.uint8)
    return Quantized4(q.reshape(n, k), scale.reshape(n, -1).astype(np.float32),
                      zero.reshape(n, -1).astype(np.uint8), block)


def gptq(w: np.ndarray, hessian: np.ndarray, block: int, damp: float = 0.01) -> Quantized4:
    """GPTQ of W [N, K] given H [K, K] (sum of x x^T over the calibration inputs), blocks of `block` inputs
    sharing a grid computed when the block's first column is reached."""
    n, k = w.shape
    W = w.astype(np.float64).copy()
    H = hessian.astype(np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += np.eye(k) * damp * float(np.mean(np.diag(H)))
    try:
        U = np.linalg.cholesky(np.linalg.inv(H)).T      # upper Cholesky factor of H^-1
    except np.linalg.LinAlgError:
        return rtn(w, block)
    q = np.zeros((n, k), np.uint8)
    scales = np.zeros((n, k // block))
    zeros = np.zeros((n, k // block))
    for start in range(0, k, block):
        end = start + block
        scale, zero = _grid(W[:, start:end])
        scales[:, start // block], zeros[:, start // block] = scale, zero
        err_block = np.zeros((n, block))
        for j in range(start, end):
            col = W[:, j]
            qj = np.clip(np.round(col / scale) + zero, 0, QMAX)
            q[:, j] = qj
            err = (col - (qj - zero) * scale) / U[j, j]
            W[:, j + 1:end] -= np.outer(err, U[j, j + 1:end])
            err_block[:, j - start] = err
        W[:, end:] -= err_block @ U[start:end, end:]
    return Quantized4(q, scales.astype(np.float32), zeros.astype(np.uint8), block)


def rtn8(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit round-to-nearest of W [N, K] in MatMulNBits' bits=8 layout: (B uint8 [N, K / block, block],
    scales [N * K / block], zero points uint8 [N * K / block]); for the layers a perplexity budget keeps wider."""
    n, k = w.shape
    blocks = w.reshape(n * (k // block), block).astype(np.float64)
    lo, hi = np.minimum(blocks.min(axis=1), 0.0), np.maximum(blocks.max(axis=1), 0.0)
    scale = np.where(hi - lo == 0, 1.0, (hi - lo) / 255)
    zero = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(blocks / scale[:, None]) + zero[:, None], 0, 255).astype(np.uint8)
    return q.reshape(n, k // block, block), scale.astype(np.float32), zero.astype(np.uint8)


def output_error(w: np.ndarray, q: Quantized4, hessian: np.ndarray) -> float:
    """How much the layer's outputs on the calibration inputs change, relative to their size:
    tr(D H D^T) / tr(W H W^T) with D = W - dequantized (GPTQ's objective); ranks layers for a budget."""
    d = w.astype(np.float64) - q.dequantized()
    wf = w.astype(np.float64)
    return float(np.einsum("nk,kj,nj->", d, hessian, d) / max(np.einsum("nk,kj,nj->", wf, hessian, wf), 1e-30))
