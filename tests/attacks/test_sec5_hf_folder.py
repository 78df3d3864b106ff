"""Security review 5: a hostile Hugging Face folder (config.json and *.safetensors) given to the packager.

config.json's sizes were used as they came: head_dim 2**40 made the rotary table allocate 4 TiB (MemoryError
at once; 2**31 allocated and filled 8 GiB), num_attention_heads 0 divided by zero, and a safetensors header
was trusted for its length (2**62: MemoryError), its JSON type, and offsets past the file or a shape larger
than its bytes (numpy's ValueError). Each is now a ModelError naming the file, and config.json's sizes must fit
in the safetensors files before anything is allocated from them."""

import json
import os
import struct

import numpy as np
import pytest

from edgepack.packager import package
from edgepack.packager.convert.from_hf import llm_extras
from edgepack.runtime.errors import ModelError

EMBED = "model.embed_tokens.weight"


def _safetensors(path, tensors=None, header=None, length=None):
    tensors = {EMBED: np.zeros((8, 4), np.float32)} if tensors is None else tensors
    entries, data = {}, b""
    for name, arr in tensors.items():
        entries[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + arr.nbytes]}
        data += arr.tobytes()
    raw = json.dumps(entries if header is None else header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def _folder(tmp, config=None, **safetensors):
    folder = tmp / "hf"
    folder.mkdir()
    cfg = {"architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
           "num_attention_heads": 2, **(config or {})}
    (folder / "config.json").write_text(json.dumps(cfg))
    _safetensors(folder / "model.safetensors", **safetensors)
    return folder


def _refused(tmp, folder, match):
    with pytest.raises(ModelError, match=match):
        package(str(folder), tmp / "out.edgepack")


@pytest.mark.parametrize("config, match", [
    ({"head_dim": 2 ** 40}, "more than its safetensors files"),
    ({"num_hidden_layers": 10 ** 9}, "more than its safetensors files"),
    ({"vocab_size": 10 ** 12}, "more than its safetensors files"),
    ({"num_attention_heads": 0}, "num_attention_heads is 0"),
    ({"hidden_size": -4}, "hidden_size is -4"),
    ({"num_attention_heads": 3, "num_key_value_heads": 2}, "multiple of num_key_value_heads"),
    ({"hidden_size": "wide"}, "config.json is not a usable model configuration"),
    ({"hidden_size": 1e999}, "config.json is not a usable model configuration"),
    ({"rope_scaling": [1]}, "config.json is not a usable model configuration"),
], ids=["head_dim", "layers", "vocab", "no heads", "negative", "groups", "string", "infinite", "scaling list"])
def test_config_sizes_are_checked_before_anything_is_allocated(tmp, config, match):
    _refused(tmp, _folder(tmp, config), match)


def test_a_config_missing_a_size_is_refused(tmp):
    folder = _folder(tmp)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["hidden_size"]
    (folder / "config.json").write_text(json.dumps(cfg))
    _refused(tmp, folder, "KeyError")


@pytest.mark.parametrize("kwargs, match", [
    ({"length": 2 ** 62}, "its header says 4611686018427387904 bytes"),
    ({"length": 1}, "its header says 1 bytes"),
    ({"header": [1, 2]}, "not a valid safetensors file"),
    ({"header": {EMBED: {"dtype": "F32", "shape": [8, 4], "data_offsets": [0, 10 ** 12]}}}, "outside its"),
    ({"header": {EMBED: {"dtype": "F32", "shape": [10 ** 6, 10 ** 6], "data_offsets": [0, 128]}}}, "does not take"),
    ({"header": {EMBED: {"dtype": "F32", "shape": [8, -4], "data_offsets": [0, 128]}}}, "integers >= 0"),
    ({"header": {EMBED: {"dtype": "F32", "shape": [8, 4], "data_offsets": [64, 0]}}}, "outside its"),
    ({"header": {EMBED: "x"}}, "not a valid safetensors file"),
], ids=["huge header", "tiny header", "list", "offsets", "shape", "negative", "reversed", "entry"])
def test_lying_safetensors_headers_are_refused(tmp, kwargs, match):
    _refused(tmp, _folder(tmp, **kwargs), match)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_weights_is_refused_without_blocking(tmp):
    import signal

    def stuck(*_):
        raise TimeoutError("opening the FIFO blocked")

    folder = _folder(tmp)
    os.mkfifo(folder / "zz.safetensors")
    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    try:
        _refused(tmp, folder, "FIFO")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("generation", ['{"eos_token_id": "end"}', '{"eos_token_id": [[1]]}', "[1]", "{"])
def test_unreadable_generation_settings_are_a_model_error(tmp, generation):
    folder = _folder(tmp)
    (folder / "generation_config.json").write_text(generation)
    with pytest.raises(ModelError, match="generation_config.json"):
        llm_extras(str(folder), {})
