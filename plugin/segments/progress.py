"""How far a waiting segment's computation in chunks is, as staff and the CLI read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plugin.segments.models import Segment, is_waiting


@dataclass(frozen=True)
class Recompute:
    """Customers done of `total` since `started_at`, read at `now`. A segment waiting for
    the next tick has not started: nothing done, no total, no start."""

    done: int
    total: int | None
    started_at: datetime | None
    now: datetime

    @property
    def processed(self) -> int:
        """`done`, under the name the terminal's progress line reads."""
        return self.done

    @property
    def failed(self) -> int:
        """A fill skips no customer (the progress line shows failures of imports)."""
        return 0

    @property
    def percent(self) -> float | None:
        if self.total is None:
            return None
        if self.total <= 0:
            return 100.0
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def rate_per_second(self) -> float | None:
        """Customers per second since the start; None before the first chunk."""
        if self.started_at is None or self.done <= 0:
            return None
        elapsed = (self.now - self.started_at).total_seconds()
        return self.done / elapsed if elapsed > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the pace so far (chunks are alike: the same rules, as many
        customers); None until a chunk is done."""
        rate = self.rate_per_second
        if self.total is None or rate is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


def recompute_of(segment: Segment, now: datetime) -> Recompute | None:
    """The segment's progress; None when it is not waiting to be computed."""
    if not is_waiting(segment):
        return None
    if segment.recompute_started_at is None:
        return Recompute(0, None, None, now)
    return Recompute(
        segment.recompute_done or 0, segment.recompute_total, segment.recompute_started_at, now
    )
