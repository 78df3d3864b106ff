"""The packager takes its defaults from the target profile, and the bundle records what it used."""

import pytest

import edgepack
from edgepack.runtime import open_bundle

import graphs


def _quantize_step(path):
    with open_bundle(path) as b:
        steps = {s["name"]: s["options"] for s in b.manifest.provenance["steps"]}
        return steps["quantize"], b.manifest.target


@pytest.mark.parametrize("target, reduce_range", [("x86-64-avx2", True), ("raspberry-pi-4", False),
                                                   ("x86-64-avx512-vnni", False), ("generic-x86-64", True)])
def test_reduce_range_follows_the_profile(tmp, target, reduce_range):
    model, _ = graphs.mlp(hidden=(256,))
    path = tmp / f"{target}.edgepack"
    edgepack.package(model, output=path, target=target, quantize="int8-dynamic")
    options, recorded = _quantize_step(path)
    assert options["reduce_range"] is reduce_range
    assert recorded["name"] == target and recorded["quantization"]["reduce_range"] is reduce_range


def test_the_user_overrides_the_profile(tmp):
    model, _ = graphs.mlp(hidden=(256,))
    edgepack.package(model, output=tmp / "b.edgepack", target="x86-64-avx2", quantize="int8-dynamic",
                     quantize_options={"reduce_range": False})
    assert _quantize_step(tmp / "b.edgepack")[0]["reduce_range"] is False


def test_codec_level_comes_from_the_profile(tmp):
    model, _ = graphs.mlp()
    edgepack.package(model, output=tmp / "b.edgepack", target="raspberry-pi-4")
    with open_bundle(tmp / "b.edgepack") as b:
        encode = next(s for s in b.manifest.provenance["steps"] if s["name"] == "encode")
        assert encode["options"]["level"] == b.manifest.target["codec"]["level"]
