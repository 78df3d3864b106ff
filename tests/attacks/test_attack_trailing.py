"""Bytes past the declared end, or where only a signature may be: nowhere for extra data to hide
(test_bundle_errors.py checks one trailing zero byte)."""

import pytest

from edgepack.packager.sign import sign_bundle
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.format import HEADER, HEADER_SIZE

from conftest import write


@pytest.fixture
def signed(tmp, mlp_bundle, keypair):
    path = write(tmp, mlp_bundle[0], "signed.edgepack")
    sign_bundle(path, keypair.private_path)
    return path.read_bytes()


def test_bytes_after_a_signature_are_refused(tmp, signed, keypair):
    path = write(tmp, signed + b"\0" * 16)
    with pytest.raises(E.TrailingBytes, match="16 unexpected bytes"):
        open_bundle(path)
    with pytest.raises(E.TrailingBytes):
        load(path, public_key=keypair.public_path)


def test_a_second_bundle_appended_is_refused(tmp, mlp_bundle):
    data, _ = mlp_bundle
    with pytest.raises(E.TrailingBytes, match=f"{len(data)} unexpected bytes"):
        open_bundle(write(tmp, data + data))


def test_a_bundle_after_other_bytes_is_not_a_bundle(tmp, mlp_bundle):
    with pytest.raises(E.BadMagic):
        open_bundle(write(tmp, b"#!/bin/sh\n" + mlp_bundle[0]))


def test_extra_bytes_declared_as_a_signature_are_refused_without_a_key(tmp, mlp_bundle):
    """A header that counts the extra bytes as a signature makes the sizes agree; the block's form does not."""
    data = mlp_bundle[0] + b"hidden payload"
    fields = list(HEADER.unpack(data[:HEADER_SIZE]))
    fields[-1] = len(b"hidden payload")
    path = write(tmp, HEADER.pack(*fields) + data[HEADER_SIZE:])
    with pytest.raises(E.BadSignature, match="not an edgepack signature block"):
        open_bundle(path)
    with pytest.raises(E.BadSignature):
        load(path)
