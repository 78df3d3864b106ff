"""Per-op pruning rules, one module per op family; importing this package registers them all."""

from . import batchnorm, binary, concat, conv, linear, pooling, reshape, unary  # noqa: F401  (registration)
from .registry import RULES, lookup, rule

__all__ = ["RULES", "lookup", "rule"]
