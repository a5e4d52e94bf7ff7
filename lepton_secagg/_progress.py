"""A tiny progress display on stderr (no dependency).

``Progress()(label, done, total)`` redraws one line per label in place on a
terminal; when stderr is not a terminal it writes one line per label, when
the label changes or on ``close()``.  ``enabled=False`` makes it silent.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True, width: int = 28, min_interval: float = 0.05) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self._label: str | None = None
        self._state = (0, 0)
        self._started = 0.0
        self._drawn = 0.0

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if label != self._label:
            self._finish()
            self._label, self._started, self._drawn = label, now, 0.0
        self._state = (done, total)
        if self.tty and (now - self._drawn >= self.min_interval or done >= total):
            self._drawn = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def close(self) -> None:
        """End the current line."""
        if self.enabled:
            self._finish()
            self._label = None

    def _line(self, now: float) -> str:
        done, total = self._state
        frac = done / total if total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        return f"  {self._label:<18} [{bar}] {done:>5}/{total:<5} {now - self._started:6.2f}s"

    def _finish(self) -> None:
        if self._label is None:
            return
        line = self._line(time.perf_counter())
        self.stream.write(("\r" + line if self.tty else line) + "\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
