"""A progress bar on the terminal for long work (an import, segments computed in
chunks): percentage, counts, rate and ETA.

Saleor's totals arrive with the first page of each list, so the bar cannot be sized up
front (click's progressbar needs a length): this one redraws one line on a terminal and
prints a line every few seconds when the output is a file or a pipe.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

WIDTH = 30


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress(Protocol):
    """What the line shows (`plugin.importer.progress.Progress`,
    `plugin.segments.progress.Recompute`)."""

    @property
    def percent(self) -> float | None: ...
    @property
    def processed(self) -> int: ...
    @property
    def total(self) -> int | None: ...
    @property
    def rate_per_second(self) -> float | None: ...
    @property
    def eta_seconds(self) -> float | None: ...
    @property
    def failed(self) -> int: ...


def render(progress: Progress) -> str:
    if progress.percent is None:
        bar, percent = "?" * WIDTH, "  ?  %"
    else:
        filled = int(WIDTH * progress.percent / 100)
        bar, percent = "#" * filled + "." * (WIDTH - filled), f"{progress.percent:5.1f}%"
    total = "?" if progress.total is None else str(progress.total)
    parts = [f"[{bar}] {percent} {progress.processed}/{total}"]
    if progress.rate_per_second:
        parts.append(f"{progress.rate_per_second:,.0f}/s")
    if progress.eta_seconds is not None:
        parts.append(f"ETA {duration(progress.eta_seconds)}")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    return "  ".join(parts)


class ProgressLine:
    def __init__(self, stream: TextIO | None = None, every_seconds: float = 5.0) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.tty = bool(self.stream.isatty())
        self.every = every_seconds
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + render(progress).ljust(100))
            self.stream.flush()
        elif now - self._last >= self.every:
            self._last = now
            self.stream.write(render(progress) + "\n")
            self.stream.flush()

    def close(self, progress: Progress | None) -> None:
        if progress is not None:
            self.stream.write(("\r" if self.tty else "") + render(progress).ljust(100) + "\n")
            self.stream.flush()
