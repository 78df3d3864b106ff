"""SHA-256 for checking tensors, chosen by how much there is to hash.

hashlib's SHA-256 is OpenSSL's (about 2 GB/s with SHA extensions) but loading OpenSSL adds about 3.6 MB to
the process; CPython's built-in implementation is about 0.35 GB/s and adds nothing. A small bundle is
hashed with the built-in one, so that its footprint stays the model's own; a large one with OpenSSL's.
"""

from __future__ import annotations

import functools
from typing import Any
from collections.abc import Callable

# Below this many bytes to hash, the built-in implementation costs under ~25 ms on one core.
SMALL_BYTES = 8 * 1024 * 1024


@functools.cache  # looked up once: on CPython 3.10-3.11 the failed `_sha2` import searches sys.path every time
def _builtin(name: str = "sha256") -> Callable[..., Any] | None:
    for module in ("_sha2", f"_{name}"):  # CPython 3.12+, then 3.10-3.11
        try:
            return getattr(__import__(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def sha256_for(total_bytes: int) -> Callable[..., Any]:
    """A sha256 constructor suited to hashing `total_bytes` in all."""
    if total_bytes <= SMALL_BYTES:
        builtin = _builtin()
        if builtin is not None:
            return builtin
    import hashlib

    return hashlib.sha256


def small_sha256(data: bytes | bytearray | memoryview = b"") -> Any:
    """A SHA-256 object for a few kilobytes: the built-in implementation, which loads nothing."""
    return sha256_for(0)(data)


def sha512(data: bytes) -> bytes:
    """SHA-512 of a few kilobytes (Ed25519 signatures), without loading OpenSSL when avoidable."""
    builtin = _builtin("sha512")
    if builtin is None:
        import hashlib

        builtin = hashlib.sha512
    return builtin(data).digest()
