"""Bundle signatures: the signature block, the bytes it signs, and public key files.

The block (docs/FORMAT.md, "Signature") is the last SIGNATURE_BLOCK_SIZE bytes of a signed bundle:

    offset 0   8 bytes   algorithm tag, b"ed25519\\0"
    offset 8   8 bytes   key id: the first 8 bytes of SHA-256(the signer's raw 32-byte public key)
    offset 16 32 bytes   SHA-256 of the data section as stored (file bytes 64 to the manifest)
    offset 48 64 bytes   Ed25519 signature of  SIGNATURE_CONTEXT + header (40 bytes) + manifest + block[0:48]

The manifest holds the SHA-256 of the graph's and every tensor's decoded frames, so checking the signature
vouches for every byte that loading uses, without reading the data: that is what load(public_key=...)
does. The data digest vouches for the stored bytes themselves (padding, and bits of a zstd frame that a
decoder ignores): Bundle.verify() checks it, so that one byte changed anywhere fails.

Key files are the standard ones (`edgepack keygen` writes them; so do `openssl genpkey -algorithm ed25519`
and `openssl pkey -pubout`): the private key is an unencrypted PKCS#8 PEM ("PRIVATE KEY"), the public key a
SubjectPublicKeyInfo PEM ("PUBLIC KEY"). The runtime reads public keys only: such a PEM file, or the 32 raw
bytes.
"""

from __future__ import annotations

import binascii
import os

from .digest import sha256_for
from .errors import BadSignature, InvalidKey, UnsignedBundle
from .format import (
    SIGNATURE_ALGORITHM, SIGNATURE_BLOCK_SIZE, SIGNATURE_CONTEXT, SIGNATURE_KEY_ID_BYTES, SIGNATURE_SIGNED_PREFIX,
)

# DER of SubjectPublicKeyInfo{ AlgorithmIdentifier{ id-Ed25519 (1.3.101.112) }, BIT STRING (32 bytes) }
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN, _PEM_END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
_MAX_KEY_FILE = 64 * 1024
_TAG_END = len(SIGNATURE_ALGORITHM)
_KEY_ID_END = _TAG_END + SIGNATURE_KEY_ID_BYTES


def key_id(public_key: bytes) -> bytes:
    return sha256_for(0)(public_key).digest()[:SIGNATURE_KEY_ID_BYTES]


def public_key_bytes(key: str | os.PathLike | bytes) -> bytes:
    """The raw 32-byte Ed25519 public key in a PEM file (or PEM bytes), or given as 32 raw bytes."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        source, data = "public key", bytes(key)
    else:
        source, data = read_key_file(key)
    raw = data if len(data) == 32 else _from_pem(source, data)
    from . import ed25519  # imported only when a key is given: most processes never check a signature

    point = ed25519.decode_point(raw)
    if point is None:
        raise InvalidKey(source, "the 32 key bytes are not a point on the curve")
    if ed25519.has_small_order(point):
        raise InvalidKey(source, "a key of small order accepts signatures made without its secret")
    return raw


def read_key_file(path: str | os.PathLike) -> tuple[str, bytes]:
    """(the path as text, the bytes) of a key file, which is small."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as e:
        raise InvalidKey(source, f"cannot read it ({e.strerror})") from None
    if len(data) > _MAX_KEY_FILE:
        raise InvalidKey(source, f"the file is over {_MAX_KEY_FILE} bytes")
    return source, data


def _from_pem(source: str, data: bytes) -> bytes:
    if len(data) > _MAX_KEY_FILE:
        raise InvalidKey(source, f"over {_MAX_KEY_FILE} bytes")
    text = data.decode("ascii", "replace")
    if "PRIVATE KEY" in text:
        raise InvalidKey(source, "this is a private key; give the public one (the .pub file keygen wrote)")
    begin, end = text.find(_PEM_BEGIN), text.find(_PEM_END)
    if begin < 0 or end < begin:
        raise InvalidKey(source, f"expected a PEM '{_PEM_BEGIN}' block or 32 raw bytes")
    try:
        der = binascii.a2b_base64(text[begin + len(_PEM_BEGIN):end].strip().encode("ascii"))
    except (binascii.Error, ValueError):
        raise InvalidKey(source, "the PEM body is not base64") from None
    if len(der) != len(SPKI_PREFIX) + 32 or not der.startswith(SPKI_PREFIX):
        raise InvalidKey(source, "the PEM block does not hold an Ed25519 public key")
    return der[len(SPKI_PREFIX):]


def block_prefix(public_key: bytes, data_digest: bytes) -> bytes:
    """The signed first 48 bytes of a signature block: algorithm tag, key id, data digest."""
    return SIGNATURE_ALGORITHM + key_id(public_key) + data_digest


def signed_message(header: bytes, manifest: bytes, prefix: bytes) -> bytes:
    return SIGNATURE_CONTEXT + header + manifest + prefix


def signer_key_id(block: bytes) -> str | None:
    """The hex key id of a well-formed signature block, or None."""
    if len(block) != SIGNATURE_BLOCK_SIZE or block[:_TAG_END] != SIGNATURE_ALGORITHM:
        return None
    return block[_TAG_END:_KEY_ID_END].hex()


def check(path: str, header: bytes, manifest: bytes, block: bytes, public_key: bytes) -> bytes:
    """Raise unless `block` is a signature by `public_key` of this header and manifest; return the signed
    digest of the data section."""
    if not block:
        raise UnsignedBundle(path)
    signer = signer_key_id(block)
    if signer is None:
        raise BadSignature(path, f"the signature block is not a {SIGNATURE_BLOCK_SIZE}-byte Ed25519 block")
    expected = key_id(public_key).hex()
    if signer != expected:
        raise BadSignature(path, f"signed by key {signer}, not by the given key {expected}")
    prefix, signature = block[:SIGNATURE_SIGNED_PREFIX], block[SIGNATURE_SIGNED_PREFIX:]
    from . import ed25519

    if not ed25519.verify(public_key, signed_message(header, manifest, prefix), signature):
        raise BadSignature(path, f"the signature by key {signer} does not match the header and manifest")
    return prefix[_KEY_ID_END:]
