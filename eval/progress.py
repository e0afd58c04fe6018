"""A one-line progress bar for long runs (`eval run`, `eval repost`), drawn on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A one-line progress bar with pass count and ETA, drawn on stderr."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = done
        self.start_done = done
        self.passed = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self._last_draw = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, passed: bool) -> None:
        """Count one finished sample and redraw (throttled)."""
        self.done += 1
        self.passed += int(passed)
        now = time.monotonic()
        if now - self._last_draw >= (0.2 if self._tty else 10.0) or self.done == self.total:
            self._last_draw = now
            self.draw()

    def line(self) -> str:
        """The current bar as text."""
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        elapsed = time.monotonic() - self.started
        fresh = self.done - self.start_done
        left = self.total - self.done
        eta = elapsed / fresh * left if fresh else float("nan")
        rate = f"{self.passed}/{fresh} passed" if fresh else "starting"
        return (
            f"[{bar}] {self.done}/{self.total} {frac:4.0%}  {rate}  "
            f"elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
        )

    def draw(self) -> None:
        """Write the bar (in place on a terminal, one line per draw otherwise)."""
        end = "\r" if self._tty and self.done < self.total else "\n"
        self.stream.write(self.line() + end)
        self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
