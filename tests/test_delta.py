"""Deltas between bundle versions: applied, they rebuild the new bundle byte for byte (its signature with
it); the wrong base, a corrupt or truncated delta, or another format version are refused with one typed
error, no output, and the base untouched."""

import hashlib
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from edgepack.cli import cli
from edgepack.packager.delta import make_delta
from edgepack.packager.sign import keygen, sign_bundle
from edgepack.runtime import apply_delta, load, open_bundle, open_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime.errors import BadSignature, UnsignedBundle

import deltas


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    return deltas.versions(tmp_path_factory.mktemp("versions"))


@pytest.fixture(scope="module")
def made(versions, tmp_path_factory):
    """{version: delta path} from v1 to each other version."""
    paths, _ = versions
    folder = tmp_path_factory.mktemp("deltas")
    return {v: make_delta(paths["v1"], paths[v], folder / f"{v}.edgedelta").path for v in ("head", "full", "shape")}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("version", ["head", "full", "shape"])
def test_apply_rebuilds_the_new_bundle_exactly(versions, made, tmp_path, version):
    paths, feeds = versions
    before = sha(paths["v1"])
    out = tmp_path / "new.edgepack"
    done = apply_delta(paths["v1"], made[version], out)
    assert sha(out) == sha(paths[version])
    assert sha(paths["v1"]) == before
    assert done.bytes == os.path.getsize(paths[version])
    got, want = load(out).run(feeds), load(paths[version]).run(feeds)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert [f for f in os.listdir(tmp_path) if f != "new.edgepack"] == []  # no temporary left behind


def test_unchanged_blobs_are_referenced_and_changed_ones_coded(made, versions):
    paths, _ = versions
    with open_delta(made["head"]) as d:
        ops = {op.result.name: op.op for op in d.ops}
    assert ops["<graph>"] == "copy" and ops["w0"] == "copy" and ops["w1"] == "copy"
    assert ops["w2"] == "diff"
    head = os.path.getsize(made["head"])
    assert head < 0.2 * os.path.getsize(paths["head"])  # 2 of 7 blobs changed, the smallest ones
    with open_delta(made["full"]) as d:
        ops = {op.result.name: op.op for op in d.ops}
        assert ops["w0"] == ops["w1"] == ops["w2"] == "diff", ops  # b2 (40 bytes raw) may be carried whole
        # the differences code smaller than the new tensors do in the bundle
        assert sum(op.delta_bytes for op in d.ops) < 0.8 * sum(op.result.length for op in d.ops[1:])
    with open_delta(made["shape"]) as d:
        ops = {op.result.name: op.op for op in d.ops}
    assert ops["<graph>"] == "literal" and ops["w1"] == "literal" and ops["w0"] == "copy"


def test_transforms_round_trip_every_width():
    from edgepack.packager.delta_code import difference
    from edgepack.runtime.delta import unzigzag

    rng = np.random.default_rng(0)
    for kind in ("u1", "<u2", "<u4", "<u8"):
        info = np.iinfo(np.dtype(kind))
        old = rng.integers(0, info.max, 1000, dtype=np.dtype(kind), endpoint=True)
        new = rng.integers(0, info.max, 1000, dtype=np.dtype(kind), endpoint=True)
        new[:10] = old[:10] + 1
        new[10:20] = old[10:20] - 1
        d = difference(old, new, "add")
        assert (d[:10] == 2).all() and (d[10:20] == 1).all()  # zigzag: +1 -> 2, -1 -> 1
        unzigzag(d)
        assert np.array_equal(old + d, new)
        assert np.array_equal(old ^ difference(old, new, "xor"), new)


def test_signed_new_gives_a_bundle_that_verifies(versions, tmp_path):
    paths, _ = versions
    keys = keygen(tmp_path / "k.key")
    signed = tmp_path / "full.edgepack"
    signed.write_bytes(paths["full"].read_bytes())
    sign_bundle(signed, keys.private_path)
    update = make_delta(paths["v1"], signed, tmp_path / "u.edgedelta").path
    out = tmp_path / "out.edgepack"
    apply_delta(paths["v1"], update, out, public_key=keys.public_path)
    with open_bundle(out, public_key=keys.public_path) as b:
        assert b.verify() == []
    # another key, or an unsigned result, is refused before anything is written
    other = keygen(tmp_path / "other.key")
    with pytest.raises(BadSignature):
        apply_delta(paths["v1"], update, tmp_path / "no1.edgepack", public_key=other.public_path)
    unsigned = make_delta(paths["v1"], paths["full"], tmp_path / "n.edgedelta").path
    with pytest.raises(UnsignedBundle):
        apply_delta(paths["v1"], unsigned, tmp_path / "no2.edgepack", public_key=keys.public_path)
    assert not (tmp_path / "no1.edgepack").exists() and not (tmp_path / "no2.edgepack").exists()


def _refused(base, update, out, error):
    before = sha(base)
    with pytest.raises(error) as info:
        apply_delta(base, update, out)
    assert not os.path.exists(out)
    assert [f for f in os.listdir(os.path.dirname(out)) if f.endswith(".tmp")] == []
    assert sha(base) == before
    return str(info.value)


def test_wrong_base_is_refused_naming_the_expected_one(versions, made, tmp_path):
    paths, _ = versions
    message = _refused(paths["full"], made["head"], tmp_path / "out.edgepack", F.WrongBase)
    with open_delta(made["head"]) as d:
        assert d.base_sha256 in message


def test_corrupt_truncated_and_future_deltas_are_refused(made, versions, tmp_path):
    paths, _ = versions
    data = bytearray(open(made["full"], "rb").read())
    cases = {
        "truncated": (bytes(data[:-100]), F.TruncatedDelta),
        "trailing": (bytes(data) + b"\0", F.CorruptDelta),
        "magic": (b"X" + bytes(data[1:]), F.BadDeltaMagic),
        "version": (bytes(data[:8]) + (2).to_bytes(4, "little") + bytes(data[12:]), F.UnsupportedDeltaVersion),
        "index": (bytes(data[:-5]) + bytes([data[-5] ^ 1]) + bytes(data[-4:]), F.CorruptDelta),
    }
    for middle in range(200, len(data) - 200, max(1, len(data) // 25)):  # flips all over the data section
        flipped = bytearray(data)
        flipped[middle] ^= 0x40
        cases[f"flip{middle}"] = (bytes(flipped), F.DeltaError)
    for name, (blob, error) in cases.items():
        update = tmp_path / f"{name}.edgedelta"
        update.write_bytes(blob)
        _refused(paths["v1"], update, tmp_path / f"{name}.edgepack", error)


def test_cli_delta_apply_inspect(versions, tmp_path):
    paths, _ = versions
    runner = CliRunner()
    update, out = tmp_path / "u.edgedelta", tmp_path / "out.edgepack"
    r = runner.invoke(cli, ["delta", str(paths["v1"]), str(paths["head"]), "-o", str(update)])
    assert r.exit_code == 0, r.output
    assert "x the new bundle" in r.output
    r = runner.invoke(cli, ["apply", str(paths["v1"]), str(update), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert sha(out) == sha(paths["head"])
    r = runner.invoke(cli, ["inspect", str(update)])
    assert r.exit_code == 0, r.output
    assert "w2" in r.output and "diff/" in r.output and "x the full bundle" in r.output
    s = json.loads(runner.invoke(cli, ["inspect", str(update), "--json"]).output)
    assert [c["name"] for c in s["changed"]] == ["w2", "b2"] and s["unchanged"] == 5
    r = runner.invoke(cli, ["apply", str(paths["full"]), str(update), "-o", str(tmp_path / "w.edgepack")])
    assert r.exit_code == 1 and r.output.startswith("edgepack: error:") and "SHA-256" in r.output
    assert not (tmp_path / "w.edgepack").exists()
    r = runner.invoke(cli, ["apply", str(paths["v1"]), str(update), "-o", str(paths["v1"])])
    assert r.exit_code == 1 and "replace the base" in r.output


def test_delta_and_apply_never_overwrite_their_inputs(versions, tmp_path):
    """A new user's `edgepack delta v1 v2 -o v1` replaced the bundle v1 with the delta, `apply v1 UPDATE -o
    UPDATE` replaced the update, and `delta ... -o missing/u` was an internal error (exit 3)."""
    paths, _ = versions
    copies = {v: tmp_path / f"{v}.edgepack" for v in ("v1", "head")}
    for v, path in copies.items():
        path.write_bytes(paths[v].read_bytes())
    before = {v: sha(p) for v, p in copies.items()}
    runner = CliRunner()
    for target in (copies["v1"], copies["head"]):
        r = runner.invoke(cli, ["delta", str(copies["v1"]), str(copies["head"]), "-o", str(target)])
        assert r.exit_code == 1 and r.output.startswith("edgepack: error:") and "never overwrites" in r.output
    assert {v: sha(p) for v, p in copies.items()} == before
    r = runner.invoke(cli, ["delta", str(copies["v1"]), str(copies["head"]), "-o", str(tmp_path / "no" / "u")])
    assert r.exit_code == 1 and "does not exist" in r.output and "internal error" not in r.output
    update = tmp_path / "u.edgedelta"
    assert runner.invoke(cli, ["delta", str(copies["v1"]), str(copies["head"]), "-o", str(update)]).exit_code == 0
    kept = sha(update)
    r = runner.invoke(cli, ["apply", str(copies["v1"]), str(update), "-o", str(update)])
    assert r.exit_code == 1 and "replace the update" in r.output and sha(update) == kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_describe_says_when_shipping_the_new_bundle_costs_as_little():
    """A delta between versions that share nothing is no smaller than the new bundle: the CLI says so."""
    from edgepack.packager.delta import Made, describe

    assert not any(line.startswith("note:") for line in describe(Made("u", 500, 1000, ())))
    lines = describe(Made("u", 1028, 1000, ()))
    assert lines[0].startswith("wrote u: 1,028 bytes, 1.0280x the new bundle")
    assert lines[-1].startswith("note: the delta is no smaller than the new bundle")
