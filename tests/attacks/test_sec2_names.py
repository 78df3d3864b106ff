"""Findings F7/F8 of the second security review: a tensor name holding a lone surrogate (valid JSON, not
writable as UTF-8) reached mapped.py's initializers_message as a UnicodeEncodeError, and a mapped bundle at
a path that is not valid UTF-8 reached onnxruntime as UnicodeEncodeError / TypeError."""

import os
import shutil
import sys

import graphs
import pytest
from bundles import edit_manifest
from edgepack.packager import package
from edgepack.runtime import load
from edgepack.runtime.errors import BundleError, InvalidManifest


@pytest.fixture(scope="module")
def mapped_bundle(tmp_path_factory):
    model, feeds = graphs.mlp()
    path = tmp_path_factory.mktemp("names") / "m.edgepack"
    package(model, path, layout="mapped")
    os.chmod(path, 0o644)
    return path, feeds


def _rename(manifest, mapped):
    entry = next(t for t in manifest["tensors"] if (t["binding"] == "mapped") == mapped)
    entry["name"] = "w\ud800"


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped-tensor", "inline-tensor"])
def test_a_lone_surrogate_in_a_mapped_bundles_tensor_name_is_refused(tmp_path, mapped_bundle, mapped):
    bad = tmp_path / "bad.edgepack"
    bad.write_bytes(edit_manifest(mapped_bundle[0].read_bytes(), lambda m: _rename(m, mapped)))
    os.chmod(bad, 0o644)
    with pytest.raises(InvalidManifest, match="not valid Unicode"):
        load(bad)


def test_a_lone_surrogate_in_a_compressed_bundles_tensor_name_is_refused(tmp_path, mlp_bundle):
    bad = tmp_path / "bad.edgepack"
    bad.write_bytes(edit_manifest(mlp_bundle[0], lambda m: m["tensors"][0].update(name="\udcff")))
    with pytest.raises(InvalidManifest, match="not valid Unicode"):
        load(bad)


@pytest.mark.skipif(sys.platform != "linux", reason="file names that are not UTF-8 need a byte file system")
def test_a_mapped_bundle_at_a_non_utf8_path_gets_a_typed_error(tmp_path, mapped_bundle):
    folder = os.fsencode(tmp_path) + b"/\xff"
    os.mkdir(folder)
    shutil.copy(os.fsencode(mapped_bundle[0]), folder + b"/m.edgepack")
    with pytest.raises(BundleError, match="not valid UTF-8"):
        load(os.fsdecode(folder + b"/m.edgepack"))
