"""When a shipment is polled next: often when the parcel is about to arrive, rarely
while nothing happens, never once it is final; with jitter and backoff on failures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from plugin.tracking.statuses import Status

MINUTE = 60.0
HOUR = 3600.0

INTERVALS: dict[Status, float] = {
    Status.PENDING: 12 * HOUR,
    Status.INFO_RECEIVED: 6 * HOUR,
    Status.IN_TRANSIT: 4 * HOUR,
    Status.OUT_FOR_DELIVERY: 30 * MINUTE,
    Status.ATTEMPT_FAIL: 2 * HOUR,
    Status.AVAILABLE_FOR_PICKUP: 6 * HOUR,
    Status.EXCEPTION: 6 * HOUR,
}
JITTER = 0.1
MAX_BACKOFF = 24 * HOUR


def next_poll(
    status: Status, now: datetime, *, rng: random.Random | None = None
) -> datetime | None:
    """None for a final status; otherwise the status's interval ±10 % (so that parcels
    shipped together do not hit the carrier together ever after)."""
    if status.is_final:
        return None
    base = INTERVALS[status]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return now + timedelta(seconds=base * (1 + spread))


def backoff(failures: int, now: datetime, *, at_least: float = 0.0) -> datetime:
    """After the n-th failure in a row: 5 min, 10, 20, … up to a day; never sooner than
    what the carrier asked for (Retry-After)."""
    delay = min(MAX_BACKOFF, 5 * MINUTE * 2 ** max(0, failures - 1))
    return now + timedelta(seconds=max(delay, at_least))
