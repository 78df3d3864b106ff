"""Small pieces behind the real-world fixes: messages cut at words, NaN and label warnings, progress phases,
onnxruntime's log lines turned into error text, output path checks."""

from __future__ import annotations

import io
import os
import time
import warnings

import numpy as np
import pytest

from edgepack.runtime.errors import OptionError
from edgepack.runtime.paths import check_output, same_file
from edgepack.runtime.text import clip, counted


def test_counted_is_singular_for_one_only():
    assert counted(1, "sample") == "1 sample"
    assert counted(0, "sample") == "0 samples" and counted(2, "node") == "2 nodes"
    assert counted(1, "fresh process", "fresh processes") == "1 fresh process"
    assert counted(7, "fresh process", "fresh processes") == "7 fresh processes"


def test_clip_never_cuts_mid_word():
    text = "Unrecognized attribute: axes for operator ReduceMax in node reduce_mm_ReduceMax_0 of the graph"
    for limit in range(20, len(text)):
        cut = clip(text, limit)
        assert cut.endswith(" ...")
        head = cut[:-4]
        assert text.startswith(head) and (text[len(head)] in " ,;:" or head[-1] in "/\\,;:_.-"), (limit, cut)
    assert clip("short\nand  spaced", 100) == "short and spaced"
    long_path = "/a/very/long/path/" + "x" * 30 + "/model_with_a_long_name.onnx"
    assert clip(long_path, 40).startswith("/a/very/long/path/") and clip(long_path, 40).endswith(" ...")


def test_check_output(tmp):
    (tmp / "in.onnx").write_bytes(b"x")
    assert check_output(tmp / "out.edgepack", [tmp / "in.onnx"]) == str(tmp / "out.edgepack")
    assert check_output("-") == "-"
    with pytest.raises(OptionError, match="does not exist"):
        check_output(tmp / "a" / "b.edgepack")
    with pytest.raises(OptionError, match="is a folder"):
        check_output(tmp)
    with pytest.raises(OptionError, match="is the input"):
        check_output(tmp / "in.onnx", [None, tmp / "in.onnx"])
    os.symlink(tmp / "in.onnx", tmp / "ln.onnx")
    assert same_file(tmp / "ln.onnx", tmp / "in.onnx") and not same_file(tmp / "x", tmp / "in.onnx")


@pytest.mark.packager
def test_nan_inputs_and_labels_outside_the_classes_are_warned(tmp):
    import edgepack
    import graphs

    model, _ = graphs.mlp(d_in=8, hidden=(16,), d_out=4)
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    x[2, 3] = np.nan
    x[4, 0] = np.inf
    np.savez(tmp / "eval.npz", x=x, labels=np.array([0, 1, 2, 3, 7, -1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edgepack.package(model, tmp / "m.edgepack", eval_data=str(tmp / "eval.npz"))
    messages = [str(w.message) for w in caught]
    assert any("array 'x' holds NaN or infinite values in samples 2, 4" in m for m in messages), messages
    assert any("array 'labels' has values outside the model's 4 classes" in m and "samples 4, 5 (7, -1)" in m
               for m in messages), messages


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_phase_redraws_on_a_terminal_and_summarises_elsewhere(monkeypatch):
    from edgepack.packager import progress

    tty = _Tty()
    with progress.progress_setting(None), progress.Phase("refitting", stream=tty) as bar:
        time.sleep(0.6)  # native work: the timer thread keeps the line current
        bar.summary = "3 layers refitted"
    assert tty.getvalue().count("\r") >= 2 and "3 layers refitted" in tty.getvalue()
    plain = io.StringIO()
    monkeypatch.setattr(progress, "SUMMARY_AFTER_S", 0.0)
    with progress.progress_setting(None), progress.Phase("refitting", stream=plain) as bar:
        bar.summary = "3 layers refitted"
    assert plain.getvalue().startswith("edgepack: refitting took") and plain.getvalue().count("\n") == 1
    quick = io.StringIO()
    monkeypatch.setattr(progress, "SUMMARY_AFTER_S", 60.0)
    with progress.progress_setting(None), progress.Phase("refitting", stream=quick):
        pass
    assert quick.getvalue() == ""  # a quick phase says nothing off a terminal
    monkeypatch.setattr(progress, "SUMMARY_AFTER_S", 0.0)
    with progress.progress_setting(False), progress.Phase("refitting", stream=quick):
        pass
    assert quick.getvalue() == ""  # nor anything at all with --no-progress


def test_onnxruntime_log_lines_become_error_text():
    from edgepack.cli_options import NativeLog, ort_messages, with_native_log

    text = ("\x1b[1;31m2026-01-01 10:00:00.1 [E:onnxruntime:, sequential_executor.cc:572 ExecuteKernel] Non-zero "
            "status code returned while running Conv node. Name:'c' Status Message: Invalid input shape: {1,1}"
            "\x1b[m\n2026-01-01 10:00:00.2 [W:onnxruntime:, graph.cc:1 Warn] unused initializer\nother text\n")
    assert ort_messages(text) == ["Non-zero status code returned while running Conv node. Name:'c' Status "
                                  "Message: Invalid input shape: {1,1}"]
    log = NativeLog()
    log.final = text
    assert log.other_lines() == ["other text"]
    message = with_native_log(OptionError("the run failed"), log)
    assert message.startswith("the run failed (onnxruntime: Non-zero status") and "\x1b" not in message
    assert with_native_log(OptionError("Invalid input shape: {1,1} and more"), NativeLog()) == \
        "Invalid input shape: {1,1} and more"


def test_native_stderr_is_captured_and_other_lines_passed_on(capfd):
    from edgepack.cli_options import native_stderr_captured

    with native_stderr_captured() as log:
        os.write(2, b"2026-01-01 [E:onnxruntime:, x.cc:1 f] boom\nplain native line\n")
        assert log.errors() == ["boom"]
    err = capfd.readouterr().err
    assert "plain native line" in err and "onnxruntime" not in err


def test_parse_shapes():
    from edgepack.runtime.feeds import parse_shapes

    assert parse_shapes(["images=1,3,640,640", "ids = 1x16"]) == {"images": (1, 3, 640, 640), "ids": (1, 16)}
    for bad in (["x"], ["x=1,a"], ["x=0,3"], ["x=1", "x=2"]):
        with pytest.raises(OptionError, match="--shape"):
            parse_shapes(bad)
