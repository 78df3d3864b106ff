"""Progress bars on stderr, for the long steps (calibration, the budget search): shown when stderr is a
terminal, or when asked (`progress=True`, `--progress`, EDGEPACK_PROGRESS=1); never on stdout.

On a terminal a bar redraws one line in place; elsewhere (a log file, when asked) it writes a plain line at
most once a second, and always the last one.

    with Progress("calibrating", total=200, enabled=None) as bar:   # None: only on a terminal
        for ...: bar.update(done, note="...")
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import IO
from collections.abc import Iterator

WIDTH = 24
_LINE_EVERY_S = 1.0
_REDRAW_EVERY_S = 0.1


def wanted(enabled: bool | None, stream: IO[str] | None = None) -> bool:
    """Whether to draw: as asked, else when EDGEPACK_PROGRESS says so, else when the stream is a terminal."""
    if enabled is not None:
        return enabled
    env = os.environ.get("EDGEPACK_PROGRESS")
    if env is not None:
        return env not in ("", "0", "false", "no")
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """One bar: `update(done, note)` as work advances, `close()` (or the with block) when it ends."""

    def __init__(self, label: str, total: int, enabled: bool | None = None, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.enabled = wanted(enabled, self.stream)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label, self.total, self.done, self.note = label, max(total, 0), 0, ""
        self._last = 0.0
        self._start = time.monotonic()
        self._shown = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, done: int | None = None, note: str = "", total: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        self.total = self.total if total is None else total
        self.note = note or self.note
        now = time.monotonic()
        if self.enabled and now - self._last >= (_REDRAW_EVERY_S if self.tty else _LINE_EVERY_S):
            self._draw(now)

    def close(self) -> None:
        """Draw the last state (unless it is what was drawn last), and end the line on a terminal."""
        if self.enabled and (self._shown or self.done):
            now = time.monotonic()
            if self.tty or _strip_time(self.line(now)) != _strip_time(self._shown):
                self._draw(now, final=True)
        self.enabled = False

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._start
        if self.total:
            filled = min(WIDTH, WIDTH * self.done // self.total)
            bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}"
        note = f"  {self.note}" if self.note else ""
        return f"edgepack: {self.label} {bar} {elapsed:.0f}s{note}"

    def _draw(self, now: float, final: bool = False) -> None:
        self._last = now
        text = self.line(now)
        if self.tty:
            columns = _columns()
            self.stream.write("\r" + text[:columns - 1].ljust(columns - 1) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = text


def _strip_time(line: str) -> str:
    return " ".join(w for w in line.split() if not (w.endswith("s") and w[:-1].isdigit()))


def _columns() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
        return columns if columns >= 20 else 100  # a pseudo-terminal without a size reports 0
    except (OSError, ValueError):
        return 100


_SETTING: contextvars.ContextVar[bool | None] = contextvars.ContextVar("edgepack_progress", default=None)
SUMMARY_AFTER_S = 2.0


@contextlib.contextmanager
def progress_setting(enabled: bool | None) -> Iterator[None]:
    """Make `enabled` (package()'s `progress`) the setting of every phase() inside."""
    token = _SETTING.set(enabled)
    try:
        yield
    finally:
        _SETTING.reset(token)


class Phase(Progress):
    """A step of unknown or known length: on a terminal (or when asked) a line that keeps its elapsed time
    current, redrawn by a timer thread while the work runs in native code; elsewhere, when the step took over
    SUMMARY_AFTER_S, one line saying what it did and how long it took."""

    def __init__(self, label: str, total: int = 0, stream: IO[str] | None = None):
        self.asked = _SETTING.get()  # False (--no-progress): not even the summary line
        super().__init__(label, total, self.asked, stream)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.summary = ""

    def __enter__(self) -> Phase:
        self._token = _ACTIVE.set(self)
        if self.enabled and self.tty:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        return self

    def line(self, now: float | None = None) -> str:
        if self.total:
            return super().line(now)
        elapsed = (now or time.monotonic()) - self._start
        return f"edgepack: {self.label} {elapsed:.0f}s{'  ' + self.note if self.note else ''}"

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self._draw(time.monotonic())

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._token)
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        elapsed = time.monotonic() - self._start
        if self.enabled:
            if self.summary:
                self.note = self.summary
            self.close()
        elif self.asked is None and exc[0] is None and elapsed >= SUMMARY_AFTER_S:
            done = f" {self.done}/{self.total}" if self.total else ""
            self.stream.write(f"edgepack: {self.label}{done} took {elapsed:.1f}s"
                              f"{'; ' + self.summary if self.summary else ''}\n")
            self.stream.flush()


_ACTIVE: contextvars.ContextVar[Phase | None] = contextvars.ContextVar("edgepack_phase", default=None)


def advance(done: int, total: int, note: str = "") -> None:
    """Count work done in the phase this code runs in (calibration samples), if any."""
    active = _ACTIVE.get()
    if active is not None:
        active.update(done, note, total)


def phase(label: str, total: int = 0) -> Phase:
    """A Phase under the progress setting of the package() call that runs it."""
    return Phase(label, total)
