"""The reporting period and the small number helpers every report shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Period:
    """Half-open `[start, end)` in UTC, so consecutive periods never count a row twice."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs timezone-aware datetimes")
        if self.start >= self.end:
            raise ValueError("a period must start before it ends")

    @classmethod
    def days(cls, first: date, last: date) -> Period:
        """Whole UTC days, both included (what a date picker means)."""
        return cls(midnight(first), midnight(last + timedelta(days=1)))


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def share(part: int, whole: int) -> float | None:
    """`part / whole` rounded for display; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


def money_average(total: Decimal, count: int) -> Decimal | None:
    return (total / count).quantize(CENT) if count else None
