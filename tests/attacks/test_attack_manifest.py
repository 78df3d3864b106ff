"""Manifests built to cost memory: over the size cap, under it but made of millions of tiny JSON values,
or nested deeper than anything reads safely. Each is refused before it is parsed or printed."""

import json

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import open_bundle
from edgepack.runtime.format import MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH

import bundles
from conftest import child_peak_mb, peak_mb_refusing, write


def test_a_manifest_over_the_cap_is_refused_without_reading_it(tmp, mlp_bundle):
    """The manifest really is there, 64 MiB + 1 bytes of it, not just a header that says so."""
    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)
    text = json.dumps(manifest).encode()
    huge = text[:-1] + b" " * (MAX_MANIFEST_BYTES + 1 - len(text)) + b"}"
    path = write(tmp, bundles.assemble(section, None, manifest_bytes=huge))
    with pytest.raises(E.ManifestTooLarge, match=str(MAX_MANIFEST_BYTES + 1)):
        open_bundle(path)
    peak = peak_mb_refusing(f"rt.open_bundle({str(path)!r})", "ManifestTooLarge")
    assert peak < 120, f"{peak:.0f} MB to refuse a manifest it should not read"


@pytest.mark.parametrize("item", [b"[]", b"{}", b'"ab"', b"1000"])
def test_a_manifest_of_tiny_values_is_refused_before_parsing(tmp, mlp_bundle, item):
    """60 MiB of `[[],[],...]` would parse into 1.4 GB of Python objects; the parse's cost bound refuses it."""
    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)
    filler = b"[" + b",".join([item] * ((60 * 2 ** 20) // (len(item) + 1))) + b"]"
    text = json.dumps(dict(manifest, report={"x": "@"})).encode().replace(b'"@"', filler)
    path = write(tmp, bundles.assemble(section, None, manifest_bytes=text))
    with pytest.raises(E.LimitExceeded, match="JSON values"):
        open_bundle(path)
    if item == b"[]":
        peak = peak_mb_refusing(f"rt.open_bundle({str(path)!r})", "LimitExceeded")
        assert peak < 250, f"{peak:.0f} MB to refuse a 60 MiB manifest"


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("where", ["target", "provenance", "report"])
def test_free_form_objects_nest_at_most_to_the_limit(tmp, mlp_bundle, where):
    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)

    def with_depth(depth):
        text = json.dumps(dict(manifest, **{where: dict(manifest[where], deep="@")}))
        return text.replace('"@"', _nested(depth)).encode()

    ok = write(tmp, bundles.assemble(section, None, manifest_bytes=with_depth(MAX_MANIFEST_DEPTH - 2)), "ok.edgepack")
    with open_bundle(ok) as b:
        assert b.manifest.raw[where]["deep"]
    bad = write(tmp, bundles.assemble(section, None, manifest_bytes=with_depth(MAX_MANIFEST_DEPTH - 1)))
    with pytest.raises(E.InvalidManifest, match=f"{where} nests deeper than {MAX_MANIFEST_DEPTH - 1}"):
        open_bundle(bad)


def test_inspect_prints_the_deepest_report_allowed(tmp, mlp_bundle):
    from click.testing import CliRunner

    from edgepack.cli import cli

    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)
    text = json.dumps(dict(manifest, report={"deep": "@"})).replace('"@"', _nested(MAX_MANIFEST_DEPTH - 2))
    path = write(tmp, bundles.assemble(section, None, manifest_bytes=text.encode()))
    for args in (["inspect", str(path)], ["inspect", "--json", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_the_costliest_manifest_that_passes_the_count_costs_about_ten_times_its_size(tmp, mlp_bundle):
    """Short strings are the most memory per counted value: 60 MiB of them parse, in a free-form report,
    into about 10 times the manifest (the claim in runtime/format.py)."""
    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)
    filler = b"[" + b",".join([b'"abcdefg"'] * ((60 * 2 ** 20) // 10)) + b"]"
    text = json.dumps(dict(manifest, report={"x": "@"})).encode().replace(b'"@"', filler)
    path = write(tmp, bundles.assemble(section, None, manifest_bytes=text))
    peak = child_peak_mb(f"import edgepack.runtime as rt\nrt.open_bundle({str(path)!r}).close()")
    assert peak < 60 + 11 * len(text) / 2 ** 20
