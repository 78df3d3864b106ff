"""Signing: keygen, sign and verify round-trip; one byte changed anywhere fails; load(public_key=...)
refuses unsigned and tampered bundles before anything else; key files are the standard PEM ones."""

import os
import shutil
import subprocess
import sys

import bundles
import graphs
import numpy as np
import pytest
from click.testing import CliRunner

import edgepack
from edgepack.cli import cli
from edgepack.packager.sign import keygen, sign_bundle
from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.format import SIGNATURE_BLOCK_SIZE


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("keys") / "release.key")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A signed bundle small enough to change every byte of, and its unsigned original."""
    model, feeds = graphs.odd_dtypes()
    folder = tmp_path_factory.mktemp("signed")
    edgepack.package(model, output=folder / "m.edgepack")
    return (folder / "m.edgepack").read_bytes(), feeds


def signed_copy(tmp, data, keys, name="s.edgepack"):
    path = tmp / name
    path.write_bytes(data)
    sign_bundle(path, keys.private_path)
    return path


def test_keygen_writes_a_private_and_a_public_pem(keys):
    assert (os.stat(keys.private_path).st_mode & 0o777) == 0o600
    assert open(keys.private_path).read().startswith("-----BEGIN PRIVATE KEY-----")
    assert open(keys.public_path).read().startswith("-----BEGIN PUBLIC KEY-----")
    assert keys.public_path == keys.private_path + ".pub" and len(keys.key_id) == 16


def test_keygen_does_not_replace_a_key(keys):
    with pytest.raises(E.OptionError, match="already exists"):
        keygen(keys.private_path)


def test_sign_and_verify_round_trip(tmp, small, keys):
    data, feeds = small
    path = signed_copy(tmp, data, keys)
    signed = path.read_bytes()
    assert len(signed) == len(data) + SIGNATURE_BLOCK_SIZE
    assert signed[40:len(data)] == data[40:]  # same data and manifest: only the header and the block differ
    with open_bundle(path, public_key=keys.public_path) as b:
        assert b.verify() == [] and b.signer == keys.key_id
    (tmp / "unsigned.edgepack").write_bytes(data)
    want = load(tmp / "unsigned.edgepack").run(feeds)
    got = load(path, public_key=keys.public_path).run(feeds)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_signing_again_replaces_the_signature(tmp, small, keys):
    other = keygen(tmp / "other.key")
    path = signed_copy(tmp, small[0], keys)
    sign_bundle(path, other.private_path)
    assert len(path.read_bytes()) == len(small[0]) + SIGNATURE_BLOCK_SIZE
    with pytest.raises(E.BadSignature, match=f"signed by key {other.key_id}, not by the given key {keys.key_id}"):
        open_bundle(path, public_key=keys.public_path)
    open_bundle(path, public_key=other.public_path).close()


def test_one_byte_changed_anywhere_fails_verification(tmp, small, keys):
    """Every byte of a signed bundle, header to signature, changed in turn: `verify --public-key` (opening
    with the key, then checking every hash, the padding and the signed data digest) fails each time."""
    from edgepack.runtime.signature import public_key_bytes

    path = signed_copy(tmp, small[0], keys)
    signed = path.read_bytes()
    key = public_key_bytes(keys.public_path)
    passed = []
    fd = os.open(path, os.O_RDWR)
    try:
        for i in range(len(signed)):
            os.pwrite(fd, bytes([signed[i] ^ (0x01 if i % 2 else 0x80)]), i)  # in place: no truncation
            try:
                with open_bundle(path, public_key=key) as b:
                    if not b.verify():
                        passed.append(i)
            except E.EdgepackError:
                pass
            os.pwrite(fd, signed[i:i + 1], i)
    finally:
        os.close(fd)
    assert passed == [], f"{len(passed)} changed bytes passed, first at {passed[:5]}"
    assert len(signed) > 1500 and path.read_bytes() == signed


def test_the_cli_round_trip_and_a_tampered_bundle(tmp, small):
    run = CliRunner().invoke
    assert run(cli, ["keygen", str(tmp / "k")]).exit_code == 0
    path = tmp / "b.edgepack"
    path.write_bytes(small[0])
    result = run(cli, ["sign", str(path), "--key", str(tmp / "k")])
    assert result.exit_code == 0 and "signed" in result.output
    result = run(cli, ["verify", str(path), "--public-key", str(tmp / "k.pub")])
    assert result.exit_code == 0 and "signed by key" in result.output
    assert run(cli, ["run", str(path), "--public-key", str(tmp / "k.pub")]).exit_code == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(data)
    result = run(cli, ["verify", str(path), "--public-key", str(tmp / "k.pub")])
    assert result.exit_code == 1 and result.output.count("\n") == 1


def test_load_refuses_an_unsigned_bundle(tmp, small, keys):
    (tmp / "u.edgepack").write_bytes(small[0])
    with pytest.raises(E.UnsignedBundle, match="not signed"):
        load(tmp / "u.edgepack", public_key=keys.public_path)


def test_load_checks_the_signature_before_anything_else(tmp, small, keys):
    """A tampered manifest that also breaks a tensor: the signature error comes first, before any tensor is
    decoded or any session built (a corrupt tensor would otherwise be reported)."""
    signed = signed_copy(tmp, small[0], keys).read_bytes()
    _, section, manifest, block = bundles.parts(signed)
    manifest["tensors"][0]["frames"][0]["sha256"] = "0" * 64
    bad = tmp / "bad.edgepack"
    bad.write_bytes(bundles.assemble(section, manifest, block))
    with pytest.raises(E.CorruptTensor):
        load(bad)
    with pytest.raises(E.BadSignature, match="does not match"):
        load(bad, public_key=keys.public_path)


def test_the_public_key_may_be_given_as_bytes(tmp, small, keys):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    path = signed_copy(tmp, small[0], keys)
    pem = open(keys.public_path, "rb").read()
    raw = load_pem_public_key(pem).public_bytes_raw()
    other = load_pem_public_key(open(keygen(tmp / "other").public_path, "rb").read()).public_bytes_raw()
    for key in (pem, raw):
        with open_bundle(path, public_key=key) as b:
            assert b.signer == keys.key_id and b.signed_data_digest == b.data_digest()
            assert b.verify() == []
    with pytest.raises(E.BadSignature):  # the bytes are the key checked against, not ignored
        open_bundle(path, public_key=other)


@pytest.mark.parametrize("what", ["private as public", "garbage", "missing"])
def test_bad_public_keys_are_refused(tmp, small, keys, what):
    path = signed_copy(tmp, small[0], keys)
    key = {"private as public": keys.private_path, "missing": tmp / "nope.pub",
           "garbage": b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"}[what]
    with pytest.raises(E.InvalidKey):
        load(path, public_key=key)


@pytest.mark.parametrize("what", ["public as private", "encrypted", "rsa", "garbage"])
def test_bad_private_keys_are_refused(tmp, small, what):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    pair = keygen(tmp / "k")
    if what == "public as private":
        key_path = pair.public_path
    else:
        key_path = tmp / "bad.key"
        if what == "encrypted":
            key = ed25519.Ed25519PrivateKey.generate()
            enc = serialization.BestAvailableEncryption(b"secret")
        elif what == "rsa":
            key, enc = rsa.generate_private_key(65537, 2048), serialization.NoEncryption()
        if what == "garbage":
            key_path.write_bytes(b"not a key")
        else:
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    path = tmp / "b.edgepack"
    path.write_bytes(small[0])
    with pytest.raises(E.InvalidKey):
        sign_bundle(path, key_path)
    assert path.read_bytes() == small[0]


def test_a_bundle_that_fails_verification_is_not_signed(tmp, small, keys):
    data = bytearray(small[0])
    with open_bundle(signed_copy(tmp, small[0], keys)) as b:
        t = b.manifest.tensors[0]
        data[b.data_start + t.offset] ^= 1
    path = tmp / "corrupt.edgepack"
    path.write_bytes(data)
    with pytest.raises(E.BundleError, match="refusing to sign"):
        sign_bundle(path, keys.private_path)
    assert path.read_bytes() == bytes(data)


def test_signing_keeps_the_file_mode(tmp, small, keys):
    path = tmp / "m.edgepack"
    path.write_bytes(small[0])
    os.chmod(path, 0o640)
    sign_bundle(path, keys.private_path)
    assert (os.stat(path).st_mode & 0o777) == 0o640


def test_keys_from_openssl_work(tmp, small):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command here")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", tmp / "o.key"], check=True)
    subprocess.run(["openssl", "pkey", "-in", tmp / "o.key", "-pubout", "-out", tmp / "o.key.pub"], check=True)
    path = tmp / "b.edgepack"
    path.write_bytes(small[0])
    sign_bundle(path, tmp / "o.key")
    with open_bundle(path, public_key=tmp / "o.key.pub") as b:
        assert b.verify() == []


def test_signing_without_cryptography_names_the_extra(tmp):
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "from edgepack.packager.sign import keygen\n"
            "from edgepack.packager.errors import MissingExtra\n"
            "try:\n    keygen(sys.argv[1])\nexcept MissingExtra as e:\n    print(e.extra, e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp / "k")], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("sign ") and "pip install 'edgepack[sign]'" in out.stdout


def test_the_runtime_verifies_without_cryptography(tmp, small, keys):
    path = signed_copy(tmp, small[0], keys)
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "from edgepack.runtime import open_bundle\n"
            "with open_bundle(sys.argv[1], public_key=sys.argv[2]) as b:\n    print(b.verify(), b.signer)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path), keys.public_path], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"[] {keys.key_id}"


def test_measure_checks_the_signature_with_the_key_given(small, keys, tmp):
    """`measure --public-key` loads the bundle as it is deployed with its key (the trusted limits); another
    key, or an unsigned bundle, is refused in one line before anything is measured."""
    path = signed_copy(tmp, small[0], keys)
    runner = CliRunner()
    ok = runner.invoke(cli, ["measure", str(path), "--runs", "2", "--public-key", keys.public_path, "--json"])
    assert ok.exit_code == 0, ok.output
    other = keygen(tmp / "other.key")
    bad = runner.invoke(cli, ["measure", str(path), "--runs", "2", "--public-key", other.public_path])
    assert bad.exit_code == 1 and bad.output.startswith("edgepack: error:") and "Traceback" not in bad.output
    unsigned = tmp / "u.edgepack"
    unsigned.write_bytes(small[0])
    refused = runner.invoke(cli, ["measure", str(unsigned), "--runs", "2", "--public-key", keys.public_path])
    assert refused.exit_code == 1 and "sign" in refused.output.lower(), refused.output
