"""Finding 6 of issue 19: a 17 KB bundle whose compressed manifest is 64 MiB of JSON made of 4-byte UTF-8
strings parsed into 979 MB before InvalidManifest. CPython keeps text with a character past U+FFFF in 4 bytes
per character, so the parse's cost bound (runtime/manifest_cost.py) counts the text and its strings at the
manifest's character width, and a manifest with such characters may be at most MAX_ASTRAL_MANIFEST_BYTES
(docs/FORMAT.md, "Manifest")."""

import json

import pytest
import zstandard

from edgepack.runtime import errors as E
from edgepack.runtime import open_bundle
from edgepack.runtime.format import FLAG_MANIFEST_ZSTD, MAX_ASTRAL_MANIFEST_BYTES
from edgepack.runtime.manifest import char_width

import bundles
from conftest import peak_mb_refusing, write

ASTRAL = "\U0001d11e"


def _compressed(tmp, mlp_bundle, filler: bytes, name: str = "m.edgepack"):
    data, _ = mlp_bundle
    _, section, manifest, _ = bundles.parts(data)
    text = json.dumps(dict(manifest, report={"x": "@"})).encode().replace(b'"@"', filler)
    stored = zstandard.ZstdCompressor(level=19).compress(text)
    return write(tmp, bundles.assemble(section, None, manifest_bytes=stored, flags=FLAG_MANIFEST_ZSTD), name), \
        len(text)


@pytest.mark.parametrize("item, mib", [(f'"{ASTRAL * 2}"', 64), ('"\\ud834\\udd1e"', 16), ('"\u0101\u0101"', 16)])
def test_many_short_wide_strings_are_refused_within_four_times_their_size(tmp, mlp_bundle, item, mib):
    item = item.encode()
    filler = b"[" + b",".join([item] * ((mib * 2 ** 20 - 8192) // (len(item) + 1))) + b"]"
    path, size = _compressed(tmp, mlp_bundle, filler)
    assert path.stat().st_size < 64 * 1024  # the review's bundle was 17 KB
    with pytest.raises(E.LimitExceeded):
        open_bundle(path)
    if item.startswith(b'"\xf0') and len(item) > 6:  # the review's case, measured in a fresh process
        peak = peak_mb_refusing(f"rt.open_bundle({str(path)!r})", "LimitExceeded")
        assert peak < 4 * size / 2 ** 20, f"{peak:.0f} MB for a {size / 2 ** 20:.0f} MiB manifest"


def test_one_long_astral_string_is_limited_by_size(tmp, mlp_bundle):
    at = MAX_ASTRAL_MANIFEST_BYTES
    _, empty = _compressed(tmp, mlp_bundle, b'""', "empty.edgepack")
    fits = ('"' + ASTRAL + "a" * (at - empty - len(ASTRAL.encode())) + '"').encode()
    path, size = _compressed(tmp, mlp_bundle, fits, "fits.edgepack")
    assert size == at
    with open_bundle(path) as b:
        assert b.manifest.report["x"].startswith(ASTRAL)
    path, size = _compressed(tmp, mlp_bundle, fits[:-1] + b'a"', "over.edgepack")
    assert size == at + 1
    with pytest.raises(E.LimitExceeded, match="past U\\+FFFF"):
        open_bundle(path)


@pytest.mark.parametrize("text, width", [(b'{"a":"b"}', 1), ('{"a":"\u00e9"}'.encode(), 1),
                                         (b'{"a":"\\u00e9"}', 1), ('{"a":"\u0101"}'.encode(), 2),
                                         (b'{"a":"\\u0101"}', 2), ('{"a":"\ufffd"}'.encode(), 2),
                                         ('{"a":"\u00ff"}'.encode(), 1), (f'{{"a":"{ASTRAL}"}}'.encode(), 4),
                                         (b'{"a":"\\uD834\\uDD1E"}', 4), ('{"\u0101":"\\ud800"}'.encode(), 4)])
def test_the_character_width_is_what_python_stores(text, width):
    assert char_width(text) == width
    widest = max(max(map(ord, k + v)) for k, v in json.loads(text).items())
    assert (1 if widest < 0x100 else 2 if widest < 0x10000 else 4) <= width
