"""One polling round: claim the due shipments from the durable schedule, ask each
carrier within its limits, fold the answers back, raise staff alerts.

The schedule is `Shipment.next_poll_at` in the database (a Redis restart loses nothing).
Claiming pushes `next_poll_at` a lease ahead, so two workers never poll one parcel; a
worker that dies mid-round leaves its claims to expire and be taken again. Carrier limits
hold per worker process (several tracking workers share an account's limits only through
the 429s it answers): size the accounts' limits to the number of workers.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.tracking import alerts, schedule
from plugin.tracking.accounts import adapter_for
from plugin.tracking.carriers.base import (
    Adapter,
    CarrierError,
    NotTracked,
    RateLimited,
    TrackingUpdate,
)
from plugin.tracking.models import CarrierAccount, Shipment
from plugin.tracking.updates import apply_update

LEASE = timedelta(minutes=10)
NO_ACCOUNT_RETRY = timedelta(hours=6)
WRITE_CHUNK = 200


@dataclass(frozen=True)
class Due:
    id: int
    installation_id: int
    carrier: str
    tracking_number: str
    poll_failures: int


@dataclass
class Outcome:
    number: str
    update: TrackingUpdate | None = None
    error: CarrierError | None = None


class CarrierLimiter:
    """At most `concurrency` requests in flight and `rate` starts in any one-second
    window, for one carrier account (a sliding log, like the carriers' own counters: a
    late event loop never makes up for lost time with a burst); after a 429 nobody
    starts before the carrier's Retry-After."""

    def __init__(self, concurrency: int, rate: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._per_window = max(1, int(rate))
        self._interval = 1.0 / rate
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.blocked_for: float | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0

    async def _wait_for_window(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._starts and now - self._starts[0] >= 1.0:
                    self._starts.popleft()
                gap = self._interval - (now - self._starts[-1]) if self._starts else 0.0
                full = len(self._starts) >= self._per_window
                wait = max(gap, (self._starts[0] + 1.0 - now) if full else 0.0)
                if wait <= 0:
                    self._starts.append(now)
                    return
                await asyncio.sleep(wait)

    async def __aenter__(self) -> CarrierLimiter:
        await self._slots.acquire()
        await self._wait_for_window()
        self.in_flight += 1
        self.started += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._slots.release()


@dataclass
class RoundStats:
    claimed: int = 0
    polled: int = 0
    changed: int = 0
    failed: int = 0
    rate_limited: int = 0
    no_account: int = 0
    alerts: list[int] = field(default_factory=list)  # shipments with new alerts
    max_in_flight: dict[str, int] = field(default_factory=dict)
    requests_per_second: dict[str, float] = field(default_factory=dict)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Due]:
    """The due shipments, oldest first, leased to this round."""
    statement = (
        select(
            Shipment.id,
            Shipment.installation_id,
            Shipment.carrier,
            Shipment.tracking_number,
            Shipment.poll_failures,
        )
        .where(Shipment.next_poll_at <= now, Shipment.cancelled_at.is_(None))
        .order_by(Shipment.next_poll_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=Shipment)
    due = [Due(*row) for row in (await session.execute(statement)).all()]
    if due:
        await session.execute(
            update(Shipment)
            .where(Shipment.id.in_([d.id for d in due]))
            .values(next_poll_at=now + LEASE)
        )
    return due


async def _poll_group(
    adapter: Adapter, limiter: CarrierLimiter, items: list[Due]
) -> dict[int, Outcome]:
    results: dict[int, Outcome] = {}

    async def one(item: Due) -> None:
        if limiter.blocked_for is not None:
            results[item.id] = Outcome(
                item.tracking_number, error=RateLimited("held back", limiter.blocked_for)
            )
            return
        async with limiter:
            if limiter.blocked_for is not None:
                results[item.id] = Outcome(
                    item.tracking_number, error=RateLimited("held back", limiter.blocked_for)
                )
                return
            try:
                update = await adapter.poll(item.tracking_number)
                results[item.id] = Outcome(item.tracking_number, update=update)
            except RateLimited as exc:
                limiter.blocked_for = exc.retry_after
                results[item.id] = Outcome(item.tracking_number, error=exc)
            except CarrierError as exc:
                results[item.id] = Outcome(item.tracking_number, error=exc)

    await asyncio.gather(*(one(item) for item in items))
    return results


def _after_failure(shipment: Shipment, error: CarrierError, now: datetime) -> None:
    shipment.last_error = str(error)[:2000]
    if isinstance(error, RateLimited):
        shipment.next_poll_at = now + timedelta(seconds=error.retry_after)
        return
    if isinstance(error, NotTracked):
        # Not an outage: the carrier has not registered the parcel yet.
        shipment.next_poll_at = schedule.next_poll(shipment.status, now)
        return
    shipment.poll_failures += 1
    shipment.next_poll_at = schedule.backoff(shipment.poll_failures, now)


async def _write(
    db: Database,
    installation_id: int,
    outcomes: dict[int, Outcome],
    now: datetime,
    stalled_days: float,
    stats: RoundStats,
) -> None:
    ids = list(outcomes)
    for start in range(0, len(ids), WRITE_CHUNK):
        chunk = ids[start : start + WRITE_CHUNK]
        async with unit_of_work(db) as session:
            await lock_installation(session, installation_id)
            rows = await session.scalars(select(Shipment).where(Shipment.id.in_(chunk)))
            for shipment in rows:
                outcome = outcomes[shipment.id]
                if outcome.number != shipment.tracking_number:
                    continue  # renumbered while polled: the fold scheduled the new number
                shipment.last_polled_at = now
                if shipment.cancelled_at is not None:
                    shipment.next_poll_at = None
                    continue
                if outcome.update is not None:
                    shipment.poll_failures = 0
                    shipment.last_error = None
                    if await apply_update(session, shipment, outcome.update, now):
                        stats.changed += 1
                    if alerts.raise_alerts(shipment, now, stalled_days):
                        stats.alerts.append(shipment.id)
                elif outcome.error is not None:
                    _after_failure(shipment, outcome.error, now)


async def _account(db: Database, installation_id: int, carrier: str) -> CarrierAccount | None:
    async with db.session() as session:
        found: CarrierAccount | None = await session.scalar(
            select(CarrierAccount).where(
                CarrierAccount.installation_id == installation_id,
                CarrierAccount.carrier == carrier,
                CarrierAccount.enabled.is_(True),
            )
        )
        return found


async def _block(db: Database, account_id: int, until: datetime) -> None:
    async with unit_of_work(db) as session:
        await session.execute(
            update(CarrierAccount)
            .where(CarrierAccount.id == account_id)
            .values(blocked_until=until)
        )


async def poll_round(
    db: Database,
    http: httpx.AsyncClient,
    secrets_box: SecretBox,
    *,
    batch: int,
    stalled_days: float,
    clock: Callable[[], datetime] = utcnow,
) -> RoundStats:
    """Poll what is due now (at most `batch` shipments), every carrier account in
    parallel, each within its own limits."""
    stats = RoundStats()
    now = clock()
    async with unit_of_work(db) as session:
        due = await claim_due(session, now, batch)
    stats.claimed = len(due)
    groups: dict[tuple[int, str], list[Due]] = defaultdict(list)
    for item in due:
        groups[(item.installation_id, item.carrier)].append(item)

    writer = asyncio.Lock()

    async def run(key: tuple[int, str], items: list[Due]) -> None:
        installation_id, carrier = key
        account = await _account(db, installation_id, carrier)
        if account is None or carrier == "manual":
            error = CarrierError(f"no {carrier} account is configured for this shop")
            outcomes = {i.id: Outcome(i.tracking_number, error=error) for i in items}
            stats.no_account += len(items)
            async with writer:
                await _write_no_account(db, installation_id, outcomes, clock())
            return
        if account.blocked_until is not None and account.blocked_until > now:
            wait = (account.blocked_until - now).total_seconds()
            blocked = RateLimited("the carrier asked us to wait", wait)
            held = {i.id: Outcome(i.tracking_number, error=blocked) for i in items}
            async with writer:
                await _write(db, installation_id, held, now, stalled_days, stats)
            stats.rate_limited += len(items)
            return
        limiter = CarrierLimiter(account.max_concurrency, account.requests_per_second)
        adapter = adapter_for(account, carrier, http, secrets_box)
        started = time.monotonic()

        async def chunk_run(chunk: list[Due]) -> None:
            # Chunks queue for the limiter in order, so an early chunk is written while
            # later ones are still being polled: the carrier never waits for the database.
            outcomes = await _poll_group(adapter, limiter, chunk)
            stats.polled += sum(1 for o in outcomes.values() if o.update is not None)
            stats.failed += sum(1 for o in outcomes.values() if o.error is not None)
            stats.rate_limited += sum(
                1 for o in outcomes.values() if isinstance(o.error, RateLimited)
            )
            async with writer:  # one writer per round: SQLite has one write lock anyway
                await _write(db, installation_id, outcomes, clock(), stalled_days, stats)

        chunks = [items[i : i + WRITE_CHUNK] for i in range(0, len(items), WRITE_CHUNK)]
        await asyncio.gather(*(chunk_run(chunk) for chunk in chunks))
        elapsed = max(time.monotonic() - started, 1e-6)
        label = f"{installation_id}:{carrier}"
        stats.max_in_flight[label] = limiter.max_in_flight
        stats.requests_per_second[label] = limiter.started / elapsed
        if limiter.blocked_for is not None:
            async with writer:
                await _block(db, account.id, clock() + timedelta(seconds=limiter.blocked_for))

    await asyncio.gather(*(run(key, items) for key, items in groups.items()))
    return stats


async def _write_no_account(
    db: Database, installation_id: int, outcomes: dict[int, Outcome], now: datetime
) -> None:
    async with unit_of_work(db) as session:
        rows = await session.scalars(select(Shipment).where(Shipment.id.in_(list(outcomes))))
        for shipment in rows:
            error = outcomes[shipment.id].error
            shipment.last_error = str(error)
            shipment.next_poll_at = None if shipment.carrier == "manual" else now + NO_ACCOUNT_RETRY
