"""Ed25519 keys and bundle signing (the `sign` extra: the `cryptography` package).

    keygen("release.key")                          # release.key (private, mode 0600) and release.key.pub
    sign_bundle("model.edgepack", "release.key")   # rewrites the bundle atomically, signed
    load("model.edgepack", public_key="release.key.pub")   # the runtime refuses unsigned or changed bundles

Checking a signature needs no extra: the runtime has its own verifier (runtime/ed25519.py). Key files are
standard PEM (runtime/signature.py): a private key from `openssl genpkey -algorithm ed25519` signs too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator

from edgepack.packager.errors import MissingExtra
from edgepack.runtime.errors import BundleError, InvalidKey, OptionError
from edgepack.runtime.format import DATA_START, HEADER, HEADER_SIZE, MAGIC, SIGNATURE_BLOCK_SIZE
from edgepack.runtime.paths import check_output
from edgepack.runtime.reader import Bundle, open_bundle
from edgepack.runtime.signature import block_prefix, key_id, read_key_file, signed_message

from .writer import write_atomic

_COPY_BYTES = 1 << 20


@dataclass(frozen=True)
class KeyPair:
    private_path: str
    public_path: str
    key_id: str


@dataclass(frozen=True)
class Signed:
    path: str
    key_id: str
    bundle_bytes: int


def _crypto() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingExtra("signing bundles", "sign", "cryptography") from None
    return ed25519, serialization


def keygen(path: str | os.PathLike, overwrite: bool = False) -> KeyPair:
    """A new Ed25519 key pair: `path` (PKCS#8 PEM, mode 0600) and `path`.pub (SubjectPublicKeyInfo PEM)."""
    ed25519, serialization = _crypto()
    private_path = os.fspath(path)
    public_path = private_path + ".pub"
    for p in (private_path, public_path):
        check_output(p, what="key file")
        if os.path.exists(p) and not overwrite:
            raise OptionError(f"{p} already exists; keygen does not replace keys (pass --force to)")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public = key.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(private_path, [private_pem], mode=0o600)
    write_atomic(public_path, [public_pem])
    return KeyPair(private_path, public_path, key_id(public.public_bytes_raw()).hex())


def load_private_key(path: str | os.PathLike) -> Any:
    """The Ed25519 private key in a PEM file (unencrypted PKCS#8, as keygen and openssl write it)."""
    ed25519, serialization = _crypto()
    source, data = read_key_file(path)
    if b"PUBLIC KEY" in data:
        raise InvalidKey(source, "this is a public key; sign with the private one (keygen's PATH, not PATH.pub)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidKey(source, "it is encrypted; edgepack signs with unencrypted keys kept private "
                                 "(mode 0600)") from None
    except Exception as e:  # cryptography raises ValueError or UnsupportedAlgorithm for what it cannot read
        raise InvalidKey(source, f"not a PEM private key ({str(e)[:100]})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidKey(source, f"a {type(key).__name__}, not an Ed25519 private key")
    return key


def _signed_stream(bundle: Bundle, header: bytes, block: bytes) -> Iterator[bytes]:
    """The bundle's bytes with a new header and signature block, the data section copied a MiB at a time."""
    yield header + bytes(DATA_START - HEADER_SIZE)
    length = bundle.manifest.data_length
    for pos in range(0, length, _COPY_BYTES):
        yield bundle.read_stored(pos, min(_COPY_BYTES, length - pos))
    yield bundle.manifest_bytes
    yield block


def sign_bundle(path: str | os.PathLike, key: str | os.PathLike) -> Signed:
    """Sign the bundle at `path` with the private key file `key`, replacing any earlier signature.

    The bundle is verified first (every hash and the padding: a signature vouches for what it signs), then
    rewritten atomically, then its signature checked with the runtime's own verifier."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BundleError(f"{path}: no such bundle")
    check_output(path, [key], "bundle")
    private = load_private_key(key)
    public = private.public_key().public_bytes_raw()
    with open_bundle(path) as bundle:
        problems = bundle.verify()
        if problems:
            raise BundleError(f"{problems[0]}; refusing to sign a bundle that fails verification")
        header = HEADER.pack(MAGIC, bundle.version, bundle.flags, bundle.manifest_offset, len(bundle.manifest_bytes),
                             SIGNATURE_BLOCK_SIZE)
        prefix = block_prefix(public, bundle.data_digest())
        block = prefix + private.sign(signed_message(header, bundle.manifest_bytes, prefix))
        mode = os.fstat(bundle.fileno()).st_mode & 0o777
        write_atomic(path, _signed_stream(bundle, header, block), mode=mode)
    with open_bundle(path, public_key=public) as signed:
        return Signed(path, signed.signer or "", signed.file_size)
