"""The runtime's pure-Python Ed25519 verifier against RFC 8032's test vectors, and verdict for verdict
against `cryptography` (OpenSSL) on random, tampered and malformed signatures."""

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgepack.runtime import ed25519

# RFC 8032, section 7.1: (secret key, public key, message, signature), hex.
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


def openssl_verifies(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


@pytest.mark.parametrize("secret, public, message, signature", RFC8032)
def test_rfc8032_vectors(secret, public, message, signature):
    public, message, signature = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert key.public_key().public_bytes_raw() == public and key.sign(message) == signature  # the vectors
    assert ed25519.verify(public, message, signature)
    assert not ed25519.verify(public, message + b"\0", signature)


def test_same_verdicts_as_openssl_on_random_and_tampered_signatures():
    rng = random.Random(8032)
    checked = accepted = 0
    for i in range(60):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        public = key.public_key().public_bytes_raw()
        message = rng.randbytes(rng.choice([0, 1, 64, 1000]))
        signature = key.sign(message)
        cases = [(public, message, signature)]
        for _ in range(8):  # one bit flipped in the key, the message or the signature
            which = rng.randrange(3)
            parts = [bytearray(public), bytearray(message or b"\0"), bytearray(signature)]
            target = parts[which]
            target[rng.randrange(len(target))] ^= 1 << rng.randrange(8)
            cases.append(tuple(bytes(p) for p in parts))
        for p, m, s in cases:
            verdict = ed25519.verify(p, m, s)
            assert verdict == openssl_verifies(p, m, s), (i, p.hex(), m.hex(), s.hex())
            checked += 1
            accepted += verdict
    assert checked == 540 and accepted == 60  # only the untampered ones


L = 2 ** 252 + 27742317777372353535851937790883648493
P = 2 ** 255 - 19


def _malformed():
    """Signatures and keys that implementations disagree on unless they follow the rules carefully."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key().public_bytes_raw()
    message = b"edgepack"
    sig = key.sign(message)
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    identity = (1).to_bytes(32, "little")
    order2 = (P - 1).to_bytes(32, "little")  # (0, -1): a point of order 2
    yield "S + L (malleable)", public, message, r + (s + L).to_bytes(32, "little")
    yield "S = L", public, message, r + L.to_bytes(32, "little")
    yield "S with the top bits set", public, message, r + (s | (1 << 255)).to_bytes(32, "little")
    yield "R the identity, not canonical (y = p + 1)", identity, message, (P + 1).to_bytes(32, "little") + bytes(32)
    # the identity as key, S = 0 and R = the identity: [S]B - [k]A = R holds, so only the encodings decide
    yield "key the identity, not canonical (y = p + 1)", (P + 1).to_bytes(32, "little"), message, identity + bytes(32)
    yield "key not on the curve", (2).to_bytes(32, "little"), message, sig
    yield "key is the identity", identity, message, identity + bytes(32)
    yield "key of order 2, S = 0", order2, message, identity + bytes(32)
    yield "all zero", bytes(32), message, bytes(64)
    yield "x = 0 with the sign bit", (1 | 1 << 255).to_bytes(32, "little"), message, sig
    yield "short signature", public, message, sig[:63]
    yield "short key", public[:31], message, sig


MALFORMED = list(_malformed())
# The one documented difference (runtime/ed25519.py): RFC 8032 refuses a key encoding with y >= p, OpenSSL
# reduces it. Keys are the verifier's own input, and public_key_bytes() refuses such a key outright.
DIFFERENT = {"key the identity, not canonical (y = p + 1)": (False, True)}


@pytest.mark.parametrize("name, public, message, signature", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_same_verdicts_as_openssl_on_malformed_input(name, public, message, signature):
    ours, theirs = ed25519.verify(public, message, signature), openssl_verifies(public, message, signature)
    assert (ours, theirs) == DIFFERENT.get(name, (theirs, theirs))


@pytest.mark.parametrize("key, problem", [
    ((P + 1).to_bytes(32, "little"), "not a point"),
    ((2).to_bytes(32, "little"), "not a point"),
    ((1).to_bytes(32, "little"), "small order"),
    ((P - 1).to_bytes(32, "little"), "small order"),
    (bytes(32), "small order"),
])
def test_keys_that_verify_what_they_should_not_are_refused(key, problem):
    from edgepack.runtime.errors import InvalidKey
    from edgepack.runtime.signature import public_key_bytes

    with pytest.raises(InvalidKey, match=problem):
        public_key_bytes(key)
