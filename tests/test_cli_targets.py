"""The CLI's target commands: targets (list, show, detect), run and measure against this device."""

import json
import subprocess
import sys

import pytest

import edgepack
from edgepack.runtime.profile import builtin_names, host_profile_name, load_profile

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def cli(*args):
    return subprocess.run([*EDGEPACK, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def bundle(mlp_files):
    d = mlp_files[0]
    edgepack.package(d / "m.onnx", output=d / "j.edgepack", target="jetson-orin-nano")
    return d


def test_targets_lists_all_seven_with_their_hardware():
    r = cli("targets")
    assert r.returncode == 0, r.stderr
    for name in builtin_names():
        line = next(line for line in r.stdout.splitlines() if line.startswith(name + " "))
        p = load_profile(name)
        assert p.device.architecture in line and p.description in line
    assert "Tensorrt,CUDA,CPU" in r.stdout


def test_targets_show_prints_the_whole_profile():
    r = cli("targets", "show", "raspberry-pi-5")
    shown = json.loads(r.stdout)
    assert shown == load_profile("raspberry-pi-5").to_dict() and "asimddp" in shown["device"]["cpu_features"]


def test_targets_detect():
    r = cli("targets", "detect", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["device"]["architecture"] == load_profile(host_profile_name()).device.architecture
    assert "CPUExecutionProvider" in out["device"]["providers"] and out["device"]["cores"] >= 1
    assert set(out["targets"]) == set(builtin_names())
    assert out["targets"][host_profile_name()]["refused"] == [] and out["closest"]
    text = cli("targets", "detect").stdout
    assert text.startswith("this device:") and "closest profile:" in text


def test_run_jetson_bundle_here_prints_one_warning_line(bundle):
    r = cli("run", bundle / "j.edgepack", "--inputs", bundle / "feeds.npz")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgepack: warning:") and "CPUExecutionProvider" in lines[0]


def test_measure_reports_the_fallback_and_the_budget(bundle):
    r = cli("measure", bundle / "j.edgepack", "--runs", "3")
    assert r.returncode == 0, r.stderr
    assert "jetson-orin-nano" in r.stdout and "2048 MB budget" in r.stdout and ": fits" in r.stdout
    assert "warning:" in r.stdout and "instead of TensorrtExecutionProvider" in r.stdout


def test_measure_bad_input_is_one_line(bundle):
    r = cli("measure", bundle / "missing.edgepack")
    assert r.returncode == 1 and r.stderr.startswith("edgepack: error:") and r.stderr.count("\n") == 1
