"""Fourth security review, second round: hostile .npz files of feeds or token ids, and a language-model
bundle whose graph declares a huge vocabulary.

numpy.load trusts an .npy header and unpacks whatever a zip holds: a 236-byte .npz declaring 10**14 floats was a
MemoryError (exit 3), 2 MB of deflated zeros took 2.1 GB and 17 s before the run was refused, and a corrupt,
encrypted or unknown-method member escaped as zlib.error, RuntimeError, NotImplementedError or LZMAError.
`perplexity --text X.npz` did not even use the feeds' reader (pickled files, NaN or bytes: ValueError, exit 3).
KVRunner counted the KV cache against memory but not the logits buffer sized from the graph's vocab (2**40:
a 12 TiB MemoryError), and perplexity sized its cache by --window even for a shorter text."""

import io
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgepack.packager import package
from edgepack.runtime import load
from edgepack.runtime.errors import InputError, OptionError
from edgepack.runtime.feeds import read_npz, token_ids_npz
from edgepack.runtime.perplexity import perplexity

from test_sec2_llm_record import tiny_lm

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def npy(shape, descr="<f4", body=b""):
    header = str({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def archive(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def saved(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def patched(path, edit):
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))
    return path


def header_field(data, offset_local, offset_central, value, fmt="<H"):
    for sig, off in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        p = data.find(sig)
        data[p + off:p + off + struct.calcsize(fmt)] = struct.pack(fmt, value)


def hostile(tmp_path):
    """name -> a hostile .npz file, and the words its error must hold."""
    zeros = saved(np.zeros((3, 64), np.float32))
    cases = {
        "huge_shape": (archive(tmp_path / "a.npz", {"x.npy": npy((10 ** 7, 10 ** 7))}), "declares shape"),
        "object": (archive(tmp_path / "b.npz", {"x.npy": npy((1,), "|O", pickle.dumps([1]))}), "Python objects"),
        "pickle": (tmp_path / "c.npz", "not an .npz archive"),
        # 236 bytes: 5 * 10**7 empty strings, 3.6 GB and 11 s as onnxruntime's strings for a string input
        "empty_strings": (archive(tmp_path / "i.npz", {"s.npy": npy((5 * 10 ** 7,), "<U0")}), "declares shape"),
    }
    cases["pickle"][0].write_bytes(pickle.dumps({"x": 1}))
    deflated = archive(tmp_path / "d.npz", {"x.npy": zeros}, zipfile.ZIP_DEFLATED)
    body = deflated.read_bytes().find(b"x.npy") + 5

    def flip(data):
        for k in range(body + 2, body + 12):
            data[k] ^= 0xFF
    cases["zlib"] = (patched(deflated, flip), "cannot read")
    method = archive(tmp_path / "e.npz", {"x.npy": zeros}, zipfile.ZIP_DEFLATED)
    cases["method"] = (patched(method, lambda d: header_field(d, 8, 10, 77)), "compression method")
    encrypted = archive(tmp_path / "f.npz", {"x.npy": zeros}, zipfile.ZIP_DEFLATED)
    cases["encrypted"] = (patched(encrypted, lambda d: header_field(d, 6, 8, 1)), "encrypted")
    lz = archive(tmp_path / "g.npz", {"x.npy": zeros}, zipfile.ZIP_LZMA)
    start = lz.read_bytes().find(b"x.npy") + 5

    def garble(data):
        for k in range(start + 4, start + 20):
            data[k] ^= 0x55
    cases["lzma"] = (patched(lz, garble), "cannot read")
    bomb = tmp_path / "h.npz"
    n = 160 << 20  # 160 MiB of zeros deflate to ~160 KB: over the 64 MiB floor
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.npy", "w", force_zip64=True) as f:
        f.write(npy((n // 256, 64)))
        for _ in range(n >> 24):
            f.write(bytes(1 << 24))
    cases["bomb"] = (bomb, "unpack to")
    strings = tmp_path / "j.npz"  # 65 KB: 16 M one-character strings, 1.3 GB once onnxruntime holds them
    np.savez_compressed(strings, s=np.zeros((16 << 20) - 64, "U1"))  # just under the floor
    cases["string_bomb"] = (strings, "strings take")
    return cases


CASES = ["huge_shape", "empty_strings", "object", "pickle", "zlib", "method", "encrypted", "lzma", "bomb",
         "string_bomb"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return hostile(tmp_path_factory.mktemp("npz"))


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_npz_of_feeds_is_one_option_error(files, case):
    path, words = files[case]
    with pytest.raises(OptionError, match=words):
        read_npz(str(path), "inputs")


def test_a_bomb_is_refused_before_it_is_unpacked(files):
    from conftest import child_peak_mb

    peak = child_peak_mb(f"""
from edgepack.runtime.errors import OptionError
from edgepack.runtime.feeds import read_npz
try:
    read_npz({str(files['bomb'][0])!r}, "inputs")
except OptionError:
    pass
else:
    raise SystemExit("no OptionError")
""")
    assert peak < 120, peak  # unpacked, it is 160 MiB


def test_a_well_formed_compressed_npz_still_reads(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, x=np.ones((3, 64), np.float32), mask=np.ones(1 << 20, np.int64))  # 8 MiB of ones
    data = read_npz(str(path), "inputs")
    assert data["x"].shape == (3, 64) and data["mask"].sum() == 1 << 20


@pytest.mark.parametrize("array", [np.array([1.0, np.nan]), np.array([1.0, np.inf]), np.array([1 + 2j])],
                         ids=["nan", "inf", "complex"])
def test_token_ids_must_be_integers(tmp_path, array):
    path = tmp_path / "ids.npz"
    np.savez(path, ids=array)
    with pytest.raises(InputError, match="not token ids"):
        token_ids_npz(str(path))


@pytest.mark.parametrize("case", ["object", "pickle", "zlib", "bomb"])
def test_perplexity_cli_reads_token_ids_as_feeds_are_read(tmp_path, files, case):
    bundle = tmp_path / "lm.edgepack"
    package(tiny_lm(), bundle)
    text = tmp_path / "bad.txt"
    text.write_bytes(b"\xff\xfe\xfa")
    for path in (files[case][0], text):
        r = subprocess.run([*EDGEPACK, "perplexity", str(bundle), "--text", str(path)], capture_output=True,
                           text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and lines[-1].startswith("edgepack: error: "), r.stderr
        assert "Traceback" not in r.stderr


def declaring_vocab(vocab):
    """tiny_lm with logits declared [1, s, vocab]: a Reshape to a runtime shape leaves onnxruntime the
    declared dim, so the session reports it though the graph computes 64."""
    model = tiny_lm()
    g = model.graph
    for node in g.node:
        if node.output[0] == "logits":
            node.output[0] = "rows"
    g.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), "minus_one"))
    g.node.extend([helper.make_node("Shape", ["input_ids"], ["shape2"]),
                   helper.make_node("Concat", ["shape2", "minus_one"], ["shape3"], axis=0),
                   helper.make_node("Reshape", ["rows", "shape3"], ["logits"])])
    for out in g.output:
        if out.name == "logits":
            out.type.tensor_type.shape.dim[2].dim_value = vocab
    return model


def test_a_declared_vocab_past_memory_is_refused_before_allocating(tmp_path):
    path = tmp_path / "vocab.edgepack"
    package(declaring_vocab(1 << 40), path)
    session = load(path)
    assert session.outputs[0].shape[-1] == 1 << 40
    with pytest.raises(InputError, match="logits"):
        session.generate([1, 2, 3], 3)
    with pytest.raises(InputError, match="logits"):
        perplexity(session, list(range(10)))


def test_a_window_longer_than_the_text_sizes_the_cache_by_the_text(tmp_path):
    path = tmp_path / "lm.edgepack"
    package(tiny_lm(), path)
    session = load(path)
    short = perplexity(session, list(range(10)), window=128)
    huge = perplexity(session, list(range(10)), window=1 << 40)  # 2**40 positions: 128 TiB of cache
    assert huge.tokens == short.tokens == 9 and huge.perplexity == pytest.approx(short.perplexity)


def test_stray_feeds_are_named_in_one_short_line(tmp_path, mlp_bundle):
    from conftest import write

    data, feeds = mlp_bundle
    session = load(write(tmp_path, data))
    stray = {f"n{i:06d}": np.zeros(1, np.float32) for i in range(20000)}  # an .npz of them made a 220 KB line
    with pytest.raises(InputError) as e:
        session.run(stray)
    assert len(str(e.value)) < 1200
    with pytest.raises(InputError) as e:
        session.run(feeds, outputs=list(stray))
    assert len(str(e.value)) < 1200


def test_token_ids_are_counted_as_the_python_ints_they_become(tmp_path):
    path = tmp_path / "ids.npz"
    np.savez_compressed(path, ids=np.ones((64 << 20) - 1024, np.uint8))  # 65 KB: 1.2 GB and hours of perplexity
    with pytest.raises(InputError, match="token ids, more than"):
        token_ids_npz(str(path))
    np.savez_compressed(path, ids=np.arange(100000, dtype=np.int32) % 320)
    assert len(token_ids_npz(str(path))) == 100000
