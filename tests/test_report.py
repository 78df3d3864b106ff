"""`edgepack report`: a self-contained HTML file (and Markdown, JSON) that shows what was done, the trials as a
plot, fidelity, sensitivity, size per layer and memory and latency measured now; written atomically."""

import base64
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import edgepack
from edgepack.packager.report import write_report

import budget_models

pytestmark = pytest.mark.packager

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    m = budget_models.wide_range_mlp()
    out = tmp_path_factory.mktemp("report") / "wide.edgepack"
    # recipe "profile": the profile's int8 format, and no timing decides the recipe (reproducible sections)
    edgepack.package(m["model"], str(out), quantize="int8-static", calibration=m["calibration"],
                     eval_data=m["eval"], budget={"max_accuracy_drop": 1.0, "max_bytes": 60_000},
                     quantize_options={"recipe": "profile"})
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    m = budget_models.wide_range_mlp()
    out = tmp_path_factory.mktemp("plain") / "plain.edgepack"
    edgepack.package(m["model"], str(out))
    return out


SECTIONS = ["Overview", "What was done", "int8 format", "Budget search", "Fidelity", "Per-layer sensitivity",
            "Size per layer", "Memory and latency"]


def _self_contained(text):
    assert not re.search(r"<(script|link|iframe)\b", text)
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)   # every asset inline
    assert "url(" not in text


def test_html_with_svg_plot(bundle, tmp):
    out = tmp / "r.html"
    text = write_report(bundle, out, measure=False, plot="svg")
    assert out.read_text() == text
    _self_contained(text)
    assert [h for h in re.findall(r"<h2>(.*?)</h2>", text)] == [*SECTIONS]
    svg = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    titles = [t.text for t in root.iter(f"{ns}title")]
    trials = json.loads(write_report(bundle, "-", "json", measure=False))["report"]["search"]["trials"]
    for t in trials:   # one marker per trial, its recipe as the tooltip; plus the original model and the legend
        assert any(title.startswith(f"trial {t['index']} ({t['stage']})") for title in titles)
    assert any(title.startswith("original model") for title in titles)
    assert "budget" in svg and "--max-bytes" in svg
    assert "not measured (--no-measure)" in text


def test_html_with_matplotlib_plot(bundle, tmp):
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    text = write_report(bundle, tmp / "r.html", measure=False, plot="matplotlib")
    _self_contained(text)
    data = re.search(r'<img class="plot" alt="[^"]*" src="data:image/png;base64,([^"]+)"', text).group(1)
    png = image.open(io.BytesIO(base64.b64decode(data)))
    assert png.size[0] >= 600 and png.size[1] >= 300 and "Drawn by matplotlib" in text


def test_measured_memory_and_latency(bundle, tmp):
    data = json.loads(write_report(bundle, tmp / "r.json", runs=5))
    m = data["measured"]
    assert m["peak_mb"] > 20 and m["p50_ms"] > 0 and m["runs"] == 5 and m["inputs"] == "random (seeded)"
    assert (tmp / "r.json").exists() and [p.name for p in tmp.iterdir()] == ["r.json"]   # no temporary left
    layers = {r["node"]: r for r in data["layers"]}
    assert layers["/fc1/Gemm"]["dtype"] == "int8" and layers["/head/Gemm"]["dtype"] == "float32"
    assert 0 < layers["/fc1/Gemm"]["stored_bytes"] < layers["/fc1/Gemm"]["source_bytes"] / 3


def test_markdown(bundle, tmp):
    text = write_report(bundle, tmp / "r.md", measure=False)
    assert [h for h in re.findall(r"^## (.*)$", text, re.M)] == SECTIONS
    assert "| trial | stage | pruned | mode | kept in float | bytes |" in text
    assert "plot is in the HTML report" in text


def test_plain_bundle_has_no_search(plain, tmp):
    text = write_report(plain, tmp / "p.html", measure=False)
    assert "<h2>Budget search</h2>" not in text and "<svg" not in text and "<img" not in text
    assert "<h2>What was done</h2>" in text and "import" in text and "encode" in text


def test_cli(bundle, tmp):
    r = subprocess.run([*EDGEPACK, "report", str(bundle), "-o", str(tmp / "r.md"), "--no-measure"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith(f"wrote {tmp / 'r.md'} (md, "), r.stderr
    r = subprocess.run([*EDGEPACK, "report", str(bundle), "-o", "-", "--format", "json", "--no-measure"],
                       capture_output=True, text=True, timeout=300)
    assert json.loads(r.stdout)["bundle"]["name"] == "wide.edgepack"
    r = subprocess.run([*EDGEPACK, "report", str(tmp / "absent.edgepack"), "-o", str(tmp / "x.html")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip() == f"edgepack: error: {tmp / 'absent.edgepack'}: no such bundle"
    assert not (tmp / "x.html").exists()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            if os.access(os.path.join(folder, name), os.X_OK):
                return os.path.join(folder, name)
    return None


@pytest.mark.parametrize("engine", ["svg", "matplotlib"])
def test_report_opens_in_headless_chromium_and_shows_the_plot(bundle, tmp, engine):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install -y chromium)")
    image = pytest.importorskip("PIL.Image")
    if engine == "matplotlib":
        pytest.importorskip("matplotlib")
    shots = {}
    for variant in ("report", "control"):
        html = write_report(bundle, tmp / f"{variant}.html", measure=False, plot=engine)
        if variant == "control":   # the same page with the plot taken out: the check must tell them apart
            html = re.sub(r'<figure id="trials-plot">.*?</figure>', "", html, flags=re.S)
            (tmp / "control.html").write_text(html)
        shot = tmp / f"{variant}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1200,2600", f"--screenshot={shot}", (tmp / f"{variant}.html").as_uri()],
                       capture_output=True, timeout=120, check=True)
        shots[variant] = image.open(shot).convert("RGB")
    blue = {v: _pixels_near(img, (0x15, 0x65, 0xc0)) for v, img in shots.items()}   # the chosen trial's marker
    red = {v: _pixels_near(img, (0xc6, 0x28, 0x28)) for v, img in shots.items()}    # the trials that missed
    print(f"{engine}: chosen-marker pixels {blue}, missed-marker pixels {red}; screenshot {tmp / 'report.png'}")
    assert blue["report"] >= 40 and red["report"] - red["control"] >= 20   # the sensitivity bars are red too
    assert blue["control"] == 0   # nothing else on the page is this blue


def _pixels_near(img, rgb, tolerance=40):
    import numpy as np

    distance = np.abs(np.asarray(img, dtype=np.int32) - np.array(rgb, dtype=np.int32)).sum(axis=-1)
    return int((distance <= tolerance).sum())


def test_a_memory_budget_verdict_says_where_the_peak_was_measured(tmp):
    """A Raspberry Pi bundle reported on this machine: the budget is the Pi's, the peak this machine's, and the
    report says so instead of a bare 'fits' (a new user's finding)."""
    m = budget_models.wide_range_mlp()
    out = tmp / "pi.edgepack"
    edgepack.package(m["model"], str(out), target="raspberry-pi-4")
    text = write_report(out, tmp / "pi.md", runs=3)
    assert "Memory budget of raspberry-pi-4: 1024 MB. The peak measured on this machine (" in text
    assert "fits within it; on the device itself, `edgepack measure` gives its own peak." in text
