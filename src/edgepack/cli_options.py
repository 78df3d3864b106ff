"""Options and helpers several `edgepack` commands share: --shape, reading .npz feeds, made-up feeds, and
onnxruntime's own log lines kept off the terminal (their text goes into the one-line error instead)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from typing import Any
from collections.abc import Callable, Iterator

import click

from edgepack.runtime.errors import EdgepackError, OptionError
from edgepack.runtime.feeds import parse_shapes, recorded_shapes, unknown_shape_hint
from edgepack.runtime.feeds import random_feeds as _random_feeds
from edgepack.runtime.feeds import read_npz as load_npz
from edgepack.runtime.text import clip

shape_option: Callable[[Any], Any] = click.option(
    "--shape", "shapes", multiple=True, metavar="NAME=D0,D1,...",
    help="Shape of input NAME for random feeds (repeatable), e.g. images=1,3,640,640; default: the shapes "
         "recorded from the calibration or eval data, else each dynamic dimension 1.")


def shapes_of(values: tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """--shape values as input name -> shape."""
    return parse_shapes(values)


def session_feeds(session: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """Random feeds for a runtime session: --shape, else the shapes its bundle recorded, else dynamic dims 1;
    and the inputs whose shape was guessed."""
    specs = [(s.name, s.dtype, s.shape) for s in session.inputs]
    return _random_feeds(specs, shapes, recorded_shapes(getattr(session.manifest, "raw", None), shapes))


def guessed_hint(session: Any, guessed: list[str]) -> str:
    return unknown_shape_hint(guessed, [(s.name, s.dtype, s.shape) for s in session.inputs])


# onnxruntime's log lines: "2024-01-01 10:00:00.0 [E:onnxruntime:, inference_session.cc:123 ...] text", often
# wrapped in terminal colour codes.
_ORT_LINE = re.compile(r"\[([VIWEF]):onnxruntime:[^\]]*\]\s*(.*)")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def ort_messages(text: str, levels: str = "EF") -> list[str]:
    """The messages of onnxruntime's log lines in `text` at `levels` (E errors, F fatal, W warnings)."""
    out = []
    for line in _COLOUR.sub("", text).splitlines():
        match = _ORT_LINE.search(line)
        if match and match.group(1) in levels and match.group(2).strip():
            out.append(match.group(2).strip())
    return out


class NativeLog:
    """What native code (onnxruntime) has written to file descriptor 2 while captured."""

    def __init__(self, sink: Any = None) -> None:
        self.sink = sink
        self.final: str | None = None

    @property
    def text(self) -> str:
        if self.final is not None or self.sink is None:
            return self.final or ""
        with open(self.sink.name if isinstance(self.sink.name, str) else f"/proc/self/fd/{self.sink.fileno()}",
                  "rb") as f:
            return f.read().decode("utf-8", "replace")

    def errors(self) -> list[str]:
        return ort_messages(self.text)

    def other_lines(self) -> list[str]:
        """Lines that are not onnxruntime's log lines (another library's messages), passed on as they were."""
        return [line for line in self.text.splitlines() if line.strip() and not _ORT_LINE.search(line)]


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[NativeLog]:
    """Send what C/C++ code writes to file descriptor 2 into a temporary file for the duration, while Python's
    own sys.stderr (click's messages, progress bars, warnings) keeps writing to the real standard error.
    Lines that are not onnxruntime's log lines are passed on at the end."""
    try:
        sys.stderr.flush()
        sink = tempfile.NamedTemporaryFile(prefix="edgepack-stderr-")
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no temporary folder, or no descriptor 2: nothing to capture
        yield NativeLog()
        return
    python_stderr, swapped = sys.stderr, False
    try:
        if python_stderr.fileno() == 2:
            sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding=python_stderr.encoding,
                                   errors="backslashreplace")
            swapped = True
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    with sink:
        log = NativeLog(sink)
        os.dup2(sink.fileno(), 2)
        try:
            yield log
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(real, 2)
            os.close(real)
            if swapped:
                sys.stderr.close()
                sys.stderr = python_stderr
            log.final = log.text
            for line in log.other_lines():
                click.echo(line, err=True)


def with_native_log(error: EdgepackError, log: NativeLog) -> str:
    """The one-line error text, with onnxruntime's logged errors added when the message lacks them."""
    text = str(error)
    extra = [m for m in log.errors() if m not in text]
    if extra:
        text = f"{text} (onnxruntime: {clip('; '.join(extra), 300)})"
    return text


def run_inputs(bundle: str, inputs_path: str | None, output_path: str | None, shapes: tuple[str, ...]
               ) -> tuple[dict[str, Any] | None, dict[str, tuple[int, ...]]]:
    """`run`'s paths and options checked before the bundle is loaded: the feeds read (None: make them up) and
    the --shape values."""
    from edgepack.runtime.paths import check_output

    if output_path:
        check_output(output_path, [bundle, inputs_path], "--output")
    given = shapes_of(shapes)
    if inputs_path and given:
        raise OptionError("--shape sets the shapes of random inputs; drop it when giving --inputs")
    feeds = load_npz(inputs_path, "inputs") if inputs_path else None
    if feeds is not None:
        feeds.pop("labels", None)  # labels may sit beside the samples
    return feeds, given


def run_once(session: Any, feeds: dict[str, Any] | None, given: dict[str, tuple[int, ...]],
             timeout: float | None) -> dict[str, Any]:
    """Run on `feeds`, or on made-up feeds (saying so); a failure on guessed shapes names the inputs and how to
    give their shapes."""
    from edgepack.runtime.errors import InputError

    guessed: list[str] = []
    if feeds is None:
        feeds, guessed = session_feeds(session, given)
        from .cli_show import safe  # input names are the bundle's word: escaped

        click.echo(safe("note: no --inputs given: running on random inputs "
                   + ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
                   + (f" (dynamic dimensions of {', '.join(guessed)} set to 1; --shape NAME=D0,D1,... sets them)"
                      if guessed else "")), err=True)
    try:
        return session.run(feeds, timeout=timeout)
    except InputError as e:
        if not guessed:
            raise
        raise InputError(f"{e}; {guessed_hint(session, guessed)}") from None
