"""Progress bars: on stderr only when it is a terminal or when asked, redrawn in place on a terminal, plain
lines elsewhere; `package(progress=True)` shows calibration and the search."""

import io

import pytest

import edgepack
from edgepack.packager.progress import Progress, wanted

import budget_models


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_unless_a_terminal_or_asked(monkeypatch):
    monkeypatch.delenv("EDGEPACK_PROGRESS", raising=False)
    out = io.StringIO()
    with Progress("work", 3, stream=out) as bar:
        for i in range(3):
            bar.update(i + 1)
    assert out.getvalue() == ""
    assert wanted(None, Terminal()) and not wanted(None, io.StringIO()) and wanted(True, io.StringIO())
    monkeypatch.setenv("EDGEPACK_PROGRESS", "1")
    assert wanted(None, io.StringIO())
    monkeypatch.setenv("EDGEPACK_PROGRESS", "0")
    assert not wanted(None, Terminal())


def test_plain_lines_when_asked_off_a_terminal():
    out = io.StringIO()
    with Progress("calibrating", 200, enabled=True, stream=out) as bar:
        for i in range(200):
            bar.update(i + 1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("edgepack: calibrating [") and "1/200" in lines[0]   # throttled: one a second
    assert "[########################] 200/200" in lines[-1] and len(lines) <= 3


def test_one_line_redrawn_on_a_terminal():
    out = Terminal()
    with Progress("searching", 4, stream=out) as bar:
        bar.update(1, note="trial 0")
        bar.update(2, note="trial 1")
    text = out.getvalue()
    assert text.startswith("\redgepack: searching [######") and text.endswith("\n") and text.count("\n") == 1
    assert "2/4" in text and "trial 1" in text


@pytest.mark.packager
def test_package_shows_calibration_and_search_when_asked(tmp, capfd):
    m = budget_models.wide_range_mlp()
    edgepack.package(m["model"], str(tmp / "b.edgepack"), quantize="int8-static", calibration=m["calibration"],
                     eval_data=m["eval"], budget={"max_accuracy_drop": 1.0}, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "edgepack: calibrating [########################] 200/200" in err
    assert "edgepack: measuring sensitivity" in err and "edgepack: searching" in err
    edgepack.package(m["model"], str(tmp / "c.edgepack"), quantize="int8-static", calibration=m["calibration"],
                     eval_data=m["eval"], budget={"max_accuracy_drop": 1.0}, progress=False)
    assert capfd.readouterr().err == ""
