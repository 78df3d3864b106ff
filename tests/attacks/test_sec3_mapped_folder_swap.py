"""Finding F8 of the third security review: onnxruntime opens a mapped bundle again by path (folder + name).
Another user who may rename entries in the bundle's folder (or one above it), though not write the bundle,
could swap in a folder holding a copy with other weights just while onnxruntime opens the path, and swap it
back before load()'s checks: the same inode at the path before and after, and the other file's mapping gone
once onnxruntime has prepacked it. A mapped bundle's folders must now be as safe as the file: owned by this
user or root, and writable by others only with the sticky bit (as /tmp is).

The swap is timed by wrapping onnxruntime.InferenceSession (the real one builds the session); an attacker
would watch the folder with inotify."""

import os
import shutil
import sys

import graphs
import numpy as np
import onnxruntime as ort
import pytest
from edgepack.packager import package
from edgepack.runtime import load, open_bundle
from edgepack.runtime.errors import BundleError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX permissions and renames")


@pytest.fixture
def swap(tmp_path, monkeypatch):
    """A mapped bundle in tmp/models, a copy with its mapped weights zeroed in tmp/.evil, and a wrapper of
    onnxruntime.InferenceSession that swaps the two folders around the real call (the list says if it ran)."""
    model, feeds = graphs.mlp(hidden=(256,))
    folder, hidden = tmp_path / "models", tmp_path / ".evil"
    folder.mkdir()
    hidden.mkdir()
    good = folder / "m.edgepack"
    package(model, good, layout="mapped")
    with open_bundle(good) as b:
        regions = [(t.offset, t.raw_length) for t in b.manifest.mapped]
    assert regions, "the test needs mapped tensors"
    evil = hidden / "m.edgepack"
    shutil.copy(good, evil)
    with open(evil, "r+b") as f:
        for offset, length in regions:
            f.seek(64 + offset)
            f.write(bytes(length))
    for p in (good, evil):
        os.chmod(p, 0o644)
    clean = load(good).run(feeds)
    real, swapped = ort.InferenceSession, []

    def racing(*args, **kwargs):
        os.rename(folder, f"{folder}.real")
        os.rename(hidden, folder)
        swapped.append(True)
        try:
            return real(*args, **kwargs)
        finally:
            os.rename(folder, hidden)
            os.rename(f"{folder}.real", folder)

    monkeypatch.setattr(ort, "InferenceSession", racing)
    return good, folder, feeds, clean, swapped


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777], ids=["group-writable", "world-writable", "both"])
def test_a_bundle_in_a_folder_others_may_rename_in_is_refused_before_onnxruntime_opens_it(swap, mode):
    good, folder, _, _, swapped = swap
    os.chmod(folder, mode)
    with pytest.raises(BundleError, match=r"writable by their owner only .*\(chmod go-w"):
        load(good)
    assert not swapped, "onnxruntime opened the bundle before the folders were checked"


def test_a_folder_above_the_bundles_counts_too(swap):
    good, folder, _, _, swapped = swap
    os.chmod(folder.parent, 0o777)
    try:
        with pytest.raises(BundleError, match=str(folder.parent)):
            load(good)
    finally:
        os.chmod(folder.parent, 0o700)
    assert not swapped


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root")
def test_a_folder_owned_by_another_user_is_refused(swap):
    good, folder, _, _, swapped = swap
    os.chown(folder, 4321, 4321)
    with pytest.raises(BundleError, match="owned by this user or root"):
        load(good)
    assert not swapped


def test_a_sticky_shared_folder_is_accepted(swap, monkeypatch):
    """Others may not rename entries they do not own in a sticky folder; the swap here is this user's own."""
    good, folder, feeds, clean, _ = swap
    monkeypatch.undo()
    os.chmod(folder, 0o1777)
    got = load(good).run(feeds)
    assert all(np.array_equal(got[k], clean[k]) for k in clean)
