"""A dependency-free progress bar for ingest (a redrawn line on a terminal, sparse lines in logs)."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

__all__ = ["Progress", "ProgressBar"]


class Progress(Protocol):
    """Told ``(done, total, what)`` as work advances; ``what`` names the unit ("files", "chunks")."""

    def __call__(self, done: int, total: int, what: str) -> None: ...


class ProgressBar:
    def __init__(self, label: str = "", *, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._what = ""

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if what != self._what:
            if self._what and self.tty:
                self.stream.write("\n")
            self._what, self._started, self._last_tenth = what, now, -1
        finished = done >= total
        if self.tty:
            if finished or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self.line(done, total, now) + ("\n" if finished else ""))
                self.stream.flush()
            return
        tenth = 10 * done // total if total else 10
        if tenth != self._last_tenth:  # logs get at most 11 lines per phase
            self._last_tenth = tenth
            self.stream.write(self.line(done, total, now) + "\n")
            self.stream.flush()

    def line(self, done: int, total: int, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        fraction = done / total if total else 1.0
        filled = int(self.width * min(fraction, 1.0))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = done / elapsed
        head = f"{self.label} " if self.label else ""
        return f"{head}[{bar}] {done}/{total} {self._what} {rate:,.1f}/s"
