"""Ed25519 signature verification (RFC 8032, section 5.1.7) in pure Python, for the runtime.

The runtime may not depend on `cryptography` (devices get numpy, onnxruntime and zstandard only), so it
checks signatures with this module; the packager signs with `cryptography`. Verification handles only
public data, so Python's variable-time integer arithmetic leaks nothing secret.

Rules (RFC 8032, 5.1.7, checked against the RFC's test vectors and verdict for verdict against OpenSSL,
through `cryptography`, in tests/test_ed25519.py):
  - S must be below the group order L (no malleable signatures);
  - the public key must be a valid point encoding, y < p: here alone this differs from OpenSSL, which
    reduces y modulo p; no key generator makes such a key, and signature.public_key_bytes() refuses one
    before any check, with keys of small order (which "verify" forged signatures);
  - the check is [S]B - [k]A == R compared as canonical encodings, so a non-canonical R fails (as in OpenSSL).
"""

from __future__ import annotations

from .digest import sha512

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493  # order of the base point
D = -121665 * pow(121666, P - 2, P) % P                 # the curve constant d
D2 = 2 * D % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)

# Points are (X, Y, Z, T) in extended coordinates: x = X/Z, y = Y/Z, x*y = T/Z.
Point = tuple[int, int, int, int]


def _add(p: Point, q: Point) -> Point:
    """Addition on the twisted Edwards curve with a = -1 (Hisil et al. 2008, "add-2008-hwcd-3")."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * D2 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _double(p: Point) -> Point:
    """Doubling with a = -1 ("dbl-2008-hwcd")."""
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return e * f % P, g * h % P, f * g % P, e * h % P


def decode_point(data: bytes) -> Point | None:
    """The point a 32-byte encoding stands for (RFC 8032, 5.1.3), or None if it is not a valid one."""
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vx2 = v * x * x % P
    if vx2 == (-u) % P:
        x = x * SQRT_M1 % P
    elif vx2 != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y, 1, x * y % P


def _encode(p: Point) -> bytes:
    x, y, z, _ = p
    inv = pow(z, P - 2, P)
    x, y = x * inv % P, y * inv % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


BASE = decode_point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))  # y = 4/5, x even


def _double_scalar_mult(s: int, p: Point, k: int, q: Point) -> Point:
    """[s]p + [k]q in one pass over the bits (Straus), so it costs one scalar multiplication, not two."""
    both = _add(p, q)
    acc = IDENTITY
    for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        bits = (s >> i & 1, k >> i & 1)
        if bits == (1, 1):
            acc = _add(acc, both)
        elif bits == (1, 0):
            acc = _add(acc, p)
        elif bits == (0, 1):
            acc = _add(acc, q)
    return acc


def has_small_order(point: Point) -> bool:
    """Whether [8]point is the identity: such a key "verifies" signatures made without its secret."""
    for _ in range(3):
        point = _double(point)
    return point[0] % P == 0 and (point[1] - point[2]) % P == 0


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid Ed25519 signature of `message` by `public_key` (32 raw bytes)."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    a = decode_point(public_key)
    if a is None:
        return False
    assert BASE is not None
    k = int.from_bytes(sha512(r + public_key + message), "little") % L
    minus_a = ((-a[0]) % P, a[1], a[2], (-a[3]) % P)
    return _encode(_double_scalar_mult(s, BASE, k, minus_a)) == r
