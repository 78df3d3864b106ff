"""Regression tests for what the fuzzer (tests/fuzz) and the attack review found, one per root cause."""

import json
import threading

import numpy as np
import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.manifest import show

import bundles
import graphs
from conftest import write


def test_an_onnxruntime_error_that_is_not_utf8_does_not_hang(tmp, mlp_bundle):
    """onnxruntime's Python wrapper retries a failed session on the same path once; it takes an error
    message that is not UTF-8 (here from an op type) as a reason to. A second open of the FIFO used to wait
    for a writer for ever."""
    src = write(tmp, mlp_bundle[0], "src.edgepack")
    manifest, graph, tensors = bundles.decoded(src)
    assert b"Relu" in graph
    bad = write(tmp, bundles.build(manifest, graph.replace(b"Relu", b"Rel\x80", 1), tensors))
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error(lambda: load(bad))), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "load() hung"
    assert outcome == [E.SessionError]


def _error(call):
    try:
        call()
    except Exception as e:
        return type(e)
    return None


def test_a_run_that_computes_for_ever_stops_at_its_timeout(tmp):
    """A Loop whose trip count is 2**63 - 1: a valid model that never ends. run(timeout=) stops it."""
    import edgepack

    model, feeds = graphs.subgraphs()
    trips = next(t for t in model.graph.initializer if t.name == "trips")
    trips.raw_data = np.array(2 ** 63 - 1, np.int64).tobytes()
    edgepack.package(model, output=tmp / "loop.edgepack")
    session = load(tmp / "loop.edgepack")
    with pytest.raises(E.RunTimeout, match="longer than 0.5 s"):
        session.run(feeds, timeout=0.5)


def test_a_run_that_finishes_after_its_timeout_is_late_all_the_same(tmp, mlp_bundle):
    """onnxruntime checks `terminate` between nodes: a run shorter than the timer's start still finished
    after a 1 ns timeout, and is refused rather than returned as if on time (or the timer fires first)."""
    data, feeds = mlp_bundle
    session = load(write(tmp, data))
    with pytest.raises(E.RunTimeout, match="longer than (its timeout of )?1e-09 s"):
        session.run(feeds, timeout=1e-9)
    assert session.run(feeds, timeout=60)  # a generous timeout changes nothing


@pytest.mark.parametrize("threads", [10 ** 6, 2 ** 63])
def test_a_recorded_target_may_not_ask_for_a_million_threads(tmp, mlp_bundle, threads):
    """Used to start that many threads in onnxruntime, or fail with pybind11's TypeError."""
    bad = bundles.edit_manifest(mlp_bundle[0], lambda m: m["target"]["session"].update(intra_op_threads=threads))
    with pytest.raises(E.TargetError, match="at most (256|2\\*\\*53)"):
        load(write(tmp, bad))


@pytest.mark.parametrize("field, value", [("dtype", ["float32"]), ("dtype", {"a": 1}), ("codec", ["zstd"])])
def test_an_unhashable_value_where_a_name_belongs_is_refused(tmp, mlp_bundle, field, value):
    """A list as a dtype used to raise TypeError (unhashable) from the dtype table lookup."""
    bad = bundles.edit_manifest(mlp_bundle[0], lambda m: m["tensors"][0].update({field: value}))
    with pytest.raises(E.BundleError, match="JSON"):
        open_bundle(write(tmp, bad))


def test_error_messages_never_print_a_container():
    """A 990-deep list in an integer field: its repr would recurse past Python's limit (RecursionError) or be
    as large as the manifest."""
    deep = json.loads("[" * 900 + "]" * 900)
    assert show(deep) == "a JSON array" and show({"a": deep}) == "a JSON object"
    assert show("x" * 10_000) == repr("x" * 39)[:40]


def test_a_bit_zstd_ignores_still_fails_signed_verification(tmp, mlp_bundle, keypair):
    """The zstd frame header has an unused bit: flipped, the frame decodes to the same bytes, so every hash
    in the manifest still matches. The signed digest of the stored data catches it, and since issue 19 the
    frame-shape check (runtime/zstdframe.py) refuses the frame even without a key."""
    from edgepack.packager.sign import sign_bundle

    path = write(tmp, mlp_bundle[0], "signed.edgepack")
    sign_bundle(path, keypair.private_path)
    data = bytearray(path.read_bytes())
    with open_bundle(path) as b:
        frame = next(b for b in (b.manifest.graph, *b.manifest.tensors) if b.codec == "zstd")
        data[b.data_start + frame.offset + 4] ^= 0x10  # Frame_Header_Descriptor, bit 4: unused
    bad = write(tmp, bytes(data))
    with open_bundle(bad) as b:
        problems = b.verify()                        # no key: the reserved bit is refused
        assert len(problems) == 1 and "reserved bits" in problems[0], problems
    with open_bundle(bad, public_key=keypair.public_path) as b:
        problems = b.verify()
        assert problems[-1] == f"{bad}: the data section's bytes are not the ones signed (SHA-256 differs)"


def test_the_reserved_header_bytes_must_be_zero(tmp, mlp_bundle):
    data = bytearray(mlp_bundle[0])
    data[50] = 1
    with pytest.raises(E.InvalidManifest, match="reserved"):
        open_bundle(write(tmp, bytes(data)))


def test_a_recorded_target_gets_no_more_threads_than_there_are_cpus(tmp, mlp_bundle):
    """256 intra-op threads (allowed) on two cores made one load take 10 s: threads only waited."""
    from edgepack.runtime.host import usable_cpus

    bad = bundles.edit_manifest(mlp_bundle[0], lambda m: m["target"]["session"].update(
        intra_op_threads=256, inter_op_threads=256))
    session = load(write(tmp, bad))
    options = session._session.get_session_options()
    assert options.intra_op_num_threads == min(256, usable_cpus())
    assert options.inter_op_num_threads == min(256, usable_cpus())


@pytest.mark.parametrize("field, old", [("dimension", b"\x12\x01N"), ("input name", b"\n\x01x")])
def test_model_metadata_that_is_not_utf8_is_a_session_error(tmp, mlp_bundle, field, old):
    """onnxruntime accepts a graph input named, or a dimension called, with bytes that are not UTF-8; its
    Python binding then raised UnicodeDecodeError when edgepack asked for the inputs (7 findings in a
    30-minute run)."""
    src = write(tmp, mlp_bundle[0], "src.edgepack")
    manifest, graph, tensors = bundles.decoded(src)
    assert old in graph
    bad = write(tmp, bundles.build(manifest, graph.replace(old, old[:-1] + b"\xff"), tensors))
    with pytest.raises(E.SessionError, match="not UTF-8"):
        load(bad)


def test_a_model_asking_for_more_memory_than_the_process_may_have_fails_cleanly(tmp):
    """A Tile repeat of 8388609 (one byte changed) makes a valid model that needs 11 GB at run time; no check
    of the bundle can refuse it. Under an OS memory limit, the allocation fails as an InputError."""
    import edgepack
    from conftest import child_peak_mb

    model, feeds = graphs.shape_inputs()
    reps = next(t for t in model.graph.initializer if t.name == "reps")
    reps.raw_data = np.array([8388609, 1, 2, 1], np.int64).tobytes()
    edgepack.package(model, output=tmp / "tile.edgepack")
    np.savez(tmp / "feeds.npz", **feeds)
    peak = child_peak_mb(f"""
import resource
import numpy as np
import edgepack.runtime as rt
resource.setrlimit(resource.RLIMIT_AS, (3 * 2 ** 30, 3 * 2 ** 30))
session = rt.load({str(tmp / 'tile.edgepack')!r})
try:
    session.run(dict(np.load({str(tmp / 'feeds.npz')!r})))
except rt.InputError:
    pass
else:
    raise SystemExit("ran")
""")
    assert peak < 3 * 1024
