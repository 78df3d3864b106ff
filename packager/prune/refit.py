"""Least-squares refits of one layer: the closed form behind --reconstruct.

A layer whose input lost channels is refit so that, on the calibration data, its output from the pruned
network's activations X matches the original network's output Y (the kept output channels only):

    theta = argmin ||X theta - Y||^2 + lam * ||theta - theta0||^2
          = (X'X + lam I)^-1 (X'Y + lam theta0)

theta0 is the layer's weights after slicing, so the ridge term pulls towards them rather than towards zero:
directions the calibration data does not pin down keep their original weights. lam is `ridge` times the
mean diagonal of X'X. The bias, when the layer has one (or can have one), is fitted as an unpenalised
intercept: it absorbs the mean contribution of the removed channels. Only X'X, X'Y and |Y|^2 are kept, so
memory does not grow with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .graph import attr
from .patches import ConvGeometry, as_2d, patches
from .rewrite import get_initializer, set_own_input

MAX_ROWS = 60_000  # rows of X kept over all samples; positions beyond it are sampled at random


@dataclass
class Normal:
    """The running sums X'X, X'Y and |Y|^2 of one refit (rows are buffered and added in blocks)."""

    xx: np.ndarray
    xy: np.ndarray
    yy: float = 0.0
    pending: list = field(default_factory=list)
    pending_rows: int = 0

    @classmethod
    def zeros(cls, d: int, out: int) -> Normal:
        return cls(np.zeros((d, d)), np.zeros((d, out)))

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.pending.append((x, y))
        self.pending_rows += len(x)
        if self.pending_rows >= 4096:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        x = np.concatenate([p[0] for p in self.pending]).astype(np.float64)
        y = np.concatenate([p[1] for p in self.pending]).astype(np.float64)
        self.pending, self.pending_rows = [], 0
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.yy += float((y * y).sum())

    def error(self, theta: np.ndarray) -> float:
        """||X theta - Y||^2 / ||Y||^2."""
        self.flush()
        sq = float(np.einsum("ij,ij->", theta, self.xx @ theta) - 2 * np.einsum("ij,ij->", theta, self.xy) + self.yy)
        return max(sq, 0.0) / self.yy if self.yy > 0 else 0.0

    def solve(self, theta0: np.ndarray, ridge: float, intercept: bool) -> np.ndarray:
        self.flush()
        d = self.xx.shape[0]
        penalised = np.ones(d)
        if intercept:
            penalised[-1] = 0.0
        scale = float(np.mean(np.diag(self.xx)[penalised > 0])) if penalised.any() else 1.0
        lam = ridge * (scale if scale > 0 else 1.0)
        a = self.xx + np.diag(lam * penalised)
        b = self.xy + lam * penalised[:, None] * theta0
        try:
            return np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(a, b, rcond=None)[0]


class Fit:
    """One layer to refit: its weights as a matrix theta [d(+1), out], its rows of X and Y, and `target`,
    the tensor whose original values it must reproduce (its output, bias included)."""

    intercept: bool
    target: str

    def theta0(self) -> np.ndarray:
        raise NotImplementedError

    def rows(self, x: np.ndarray, y: np.ndarray, budget: int, rng: np.random.Generator):
        raise NotImplementedError

    def write(self, theta: np.ndarray) -> None:
        raise NotImplementedError

    def _with_ones(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1) if self.intercept else x


class ConvFit(Fit):
    """A 2-D or 1-D Conv with group 1; a bias is added if it had none."""

    def __init__(self, model: onnx.ModelProto, node: onnx.NodeProto, geo: ConvGeometry) -> None:
        self.model, self.node, self.geo = model, node, geo
        w = get_initializer(model, node.input[1])
        assert w is not None, f"Conv {node.name!r}: a refit layer's weight is an initializer"
        self.w = w
        self.bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        self.intercept = True
        self.target = node.output[0]

    def theta0(self) -> np.ndarray:
        w = self.w.reshape(self.w.shape[0], -1).T.astype(np.float64)
        b = get_initializer(self.model, self.bias) if self.bias else np.zeros(self.w.shape[0])
        return np.concatenate([w, np.asarray(b, np.float64)[None, :]], axis=0)

    def rows(self, x: np.ndarray, y: np.ndarray, budget: int, rng: np.random.Generator):
        x, y = as_2d(x), as_2d(y)
        for n in range(x.shape[0]):
            h, w = y.shape[2:]
            flat = np.arange(h * w) if h * w <= budget else np.sort(rng.choice(h * w, budget, replace=False))
            r, c = flat // w, flat % w
            yield self._with_ones(patches(x[n], self.geo, r, c)), y[n][:, r, c].T

    def write(self, theta: np.ndarray) -> None:
        set_own_input(self.model, self.node, 1, theta[:-1].T.reshape(self.w.shape).astype(self.w.dtype))
        set_own_input(self.model, self.node, 2, theta[-1].astype(self.w.dtype))


class LinearFit(Fit):
    """Gemm (Y = alpha * X op(B) + beta * C) or MatMul (Y = X W), on the last axis of X.

    bias: (node, input index) of the per-neuron bias the intercept goes into (Gemm's C, or the constant of
    the Add that alone reads a MatMul), scaled by `bias_scale` (Gemm's beta); None: no intercept.
    """

    def __init__(self, model: onnx.ModelProto, node: onnx.NodeProto, bias: tuple[onnx.NodeProto, int] | None,
                 bias_scale: float = 1.0) -> None:
        self.model, self.node, self.bias, self.bias_scale = model, node, bias, bias_scale
        w = get_initializer(model, node.input[1])
        assert w is not None, f"{node.op_type} {node.name!r}: a refit layer's weight is an initializer"
        self.w = w
        self.trans = node.op_type == "Gemm" and bool(attr(node, "transB", 0))
        self.alpha = float(attr(node, "alpha", 1.0)) if node.op_type == "Gemm" else 1.0
        self.intercept = bias is not None
        # a MatMul's bias lives in the Add after it: the target is then that Add's output
        self.target = bias[0].output[0] if bias is not None else node.output[0]

    def _old_bias(self) -> np.ndarray | None:
        assert self.bias is not None  # only called with an intercept, i.e. a bias to write it into
        node, i = self.bias
        return get_initializer(self.model, node.input[i]) if i < len(node.input) and node.input[i] else None

    def theta0(self) -> np.ndarray:
        w = (self.w.T if self.trans else self.w).astype(np.float64) * self.alpha
        if not self.intercept:
            return w
        b = self._old_bias()
        b = np.zeros(w.shape[1]) if b is None else np.broadcast_to(np.ravel(b), (w.shape[1],))
        return np.concatenate([w, self.bias_scale * np.asarray(b, np.float64)[None, :]], axis=0)

    def rows(self, x: np.ndarray, y: np.ndarray, budget: int, rng: np.random.Generator):
        limit = budget * (x.shape[0] if x.ndim > 1 else 1)  # `budget` rows per sample of the batch
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        if len(x) > limit:
            keep = np.sort(rng.choice(len(x), limit, replace=False))
            x, y = x[keep], y[keep]
        yield self._with_ones(x), y

    def write(self, theta: np.ndarray) -> None:
        w = (theta[:-1] if self.intercept else theta) / self.alpha
        set_own_input(self.model, self.node, 1, (w.T if self.trans else w).astype(self.w.dtype))
        if self.intercept:
            assert self.bias is not None  # intercept is set exactly when bias is
            node, i = self.bias
            old = self._old_bias()
            b = (theta[-1] / self.bias_scale).astype(self.w.dtype)
            set_own_input(self.model, node, i, b.reshape(old.shape) if old is not None and old.size == b.size else b)
