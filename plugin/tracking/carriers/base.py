"""The adapter interface every carrier implements, and what it answers in.

An adapter polls one tracking number, or turns a verified push webhook into updates;
either way it speaks the normalised statuses, keeping the carrier's code and text.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from plugin.tracking.statuses import Status


@dataclass(frozen=True)
class CheckpointData:
    occurred_at: datetime
    status: Status
    message: str
    sub_status: str | None = None
    carrier_status: str | None = None
    location: str | None = None

    def fingerprint(self) -> str:
        raw = f"{self.occurred_at.isoformat()}|{self.carrier_status}|{self.message}"
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class TrackingUpdate:
    """What the carrier says about one parcel right now."""

    tracking_number: str
    status: Status
    sub_status: str | None = None
    carrier_status: str | None = None
    carrier_text: str | None = None
    checkpoints: tuple[CheckpointData, ...] = ()
    estimated_delivery: datetime | None = None
    pickup_point: str | None = None
    pickup_hours: str | None = None
    destination_city: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """One verified push: its event id (dedup key) and, if the body says it, the update.
    Without an update the shipment is polled at once (the push only says "look")."""

    event_id: str
    tracking_number: str
    update: TrackingUpdate | None = None


class CarrierError(Exception):
    """The carrier refused or failed; `retryable` says whether a later poll may work."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class RateLimited(CarrierError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


class NotTracked(CarrierError):
    """The carrier does not know the number (yet): not an outage, try again later."""


class WebhookRejected(Exception):
    """A body that is not the carrier's webhook: answered 400."""


class BadSignature(WebhookRejected):
    """The push does not prove it comes from the carrier: answered 401."""


@dataclass
class AccountConfig:
    base_url: str
    credentials: dict[str, str] = field(default_factory=dict)


class Adapter(Protocol):
    name: str

    async def poll(self, tracking_number: str) -> TrackingUpdate: ...

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless the push really comes from the carrier."""

    def webhook_events(self, body: bytes) -> list[WebhookEvent]:
        """The events of a verified body (raises WebhookRejected if it is not one)."""


class BulkAdapter(Adapter, Protocol):
    """A carrier that reads many numbers per request (AfterShip): `poll_many` answers
    the numbers it knows, `register` starts tracking one it does not."""

    bulk_size: int

    async def poll_many(self, numbers: list[str]) -> dict[str, TrackingUpdate]: ...

    async def register(self, tracking_number: str) -> TrackingUpdate: ...


def retry_after_seconds(response: httpx.Response, default: float = 60.0) -> float:
    """`Retry-After` (seconds or an HTTP date), else AfterShip's `X-RateLimit-Reset`."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return default


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 with or without offset (carriers omit it: then UTC); None if unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":" and "T" in text:
        text = f"{text[:-2]}:{text[-2:]}"  # CDEK's +0300
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def latest(checkpoints: list[CheckpointData]) -> CheckpointData | None:
    return max(checkpoints, key=lambda c: c.occurred_at) if checkpoints else None
