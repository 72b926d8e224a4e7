"""One polling round: claim the due shipments from the durable schedule, ask each
carrier within its limits, fold the answers back, raise staff alerts.

The schedule is `Shipment.next_poll_at` in the database (a Redis restart loses nothing).
Claiming pushes `next_poll_at` a lease ahead, so two workers never poll one parcel; a
worker that dies mid-round leaves its claims to expire and be taken again.

Every carrier account runs its own pipeline: it claims its own due parcels, polls them
(many per request where the carrier reads many numbers at once) within the account's
limits, and writes each chunk's answers in one transaction of multi-row statements while
later chunks are still being polled. One slow carrier never holds up another. The rate
limit is shared by every worker (plugin.tracking.limits); concurrency is per process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

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
    BulkAdapter,
    CarrierError,
    NotTracked,
    RateLimited,
    TrackingUpdate,
)
from plugin.tracking.limits import PROCESS_RATES, CarrierLimiter, RateStore
from plugin.tracking.models import CarrierAccount, Shipment
from plugin.tracking.updates import Rows, fold

LEASE = timedelta(minutes=10)
NO_ACCOUNT_RETRY = timedelta(hours=6)
WRITE_CHUNK = 200

__all__ = ["CarrierLimiter", "RoundStats", "claim_due", "poll_round"]


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


@dataclass
class RoundStats:
    claimed: int = 0
    polled: int = 0
    changed: int = 0
    failed: int = 0
    rate_limited: int = 0
    no_account: int = 0
    requests: int = 0
    alerts: list[int] = field(default_factory=list)  # shipments with new alerts
    max_in_flight: dict[str, int] = field(default_factory=dict)
    requests_per_second: dict[str, float] = field(default_factory=dict)

    def add(self, other: RoundStats) -> None:
        for name in ("claimed", "polled", "changed", "failed", "rate_limited", "no_account"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.requests += other.requests
        self.alerts += other.alerts
        for key, peak in other.max_in_flight.items():
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), peak)
        for key, rate in other.requests_per_second.items():
            self.requests_per_second[key] = max(self.requests_per_second.get(key, 0.0), rate)


def _due_filter(now: datetime) -> list[Any]:
    return [Shipment.next_poll_at <= now, Shipment.cancelled_at.is_(None)]


async def due_accounts(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """The (installation, carrier) pairs with a parcel due now."""
    rows = await session.execute(
        select(Shipment.installation_id, Shipment.carrier).where(*_due_filter(now)).distinct()
    )
    return [(int(i), str(c)) for i, c in rows.all()]


async def claim_due(
    session: AsyncSession,
    now: datetime,
    limit: int,
    *,
    installation_id: int | None = None,
    carrier: str | None = None,
) -> list[Due]:
    """The due shipments (of one account if given), oldest first, leased to this round."""
    statement = select(
        Shipment.id,
        Shipment.installation_id,
        Shipment.carrier,
        Shipment.tracking_number,
        Shipment.poll_failures,
    ).where(*_due_filter(now))
    if installation_id is not None:
        statement = statement.where(Shipment.installation_id == installation_id)
    if carrier is not None:
        statement = statement.where(Shipment.carrier == carrier)
    statement = statement.order_by(Shipment.next_poll_at).limit(limit)
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


class _Poller:
    """Polls one account's parcels: single requests, or bulk ones where the adapter
    reads many numbers at once; stops asking after a 429."""

    def __init__(self, adapter: Adapter, limiter: CarrierLimiter) -> None:
        self.adapter = adapter
        self.limiter = limiter
        self.requests = 0

    def _held(self, number: str) -> Outcome | None:
        if self.limiter.blocked_for is None:
            return None
        return Outcome(number, error=RateLimited("held back", self.limiter.blocked_for))

    async def _one(self, number: str, call: Callable[[str], Any]) -> Outcome:
        if held := self._held(number):
            return held
        async with self.limiter:
            if held := self._held(number):
                return held
            self.requests += 1
            try:
                return Outcome(number, update=await call(number))
            except RateLimited as exc:
                self.limiter.block(exc.retry_after)
                return Outcome(number, error=exc)
            except CarrierError as exc:
                return Outcome(number, error=exc)

    async def _many(self, numbers: list[str]) -> dict[str, Outcome]:
        bulk = cast(BulkAdapter, self.adapter)
        if held := self._held(numbers[0]):
            return {n: Outcome(n, error=held.error) for n in numbers}
        async with self.limiter:
            if held := self._held(numbers[0]):
                return {n: Outcome(n, error=held.error) for n in numbers}
            self.requests += 1
            try:
                found: dict[str, TrackingUpdate] = await bulk.poll_many(numbers)
            except RateLimited as exc:
                self.limiter.block(exc.retry_after)
                return {n: Outcome(n, error=exc) for n in numbers}
            except CarrierError as exc:
                return {n: Outcome(n, error=exc) for n in numbers}
        # AfterShip may spell a number in capitals where the shop did not.
        by_upper = {number.upper(): update for number, update in found.items()}
        results = {
            n: Outcome(n, update=by_upper[n.upper()]) for n in numbers if n.upper() in by_upper
        }
        missing = [n for n in numbers if n not in results]
        registered = await asyncio.gather(*(self._one(n, bulk.register) for n in missing))
        results.update({o.number: o for o in registered})
        return results

    async def poll(self, items: list[Due]) -> dict[int, Outcome]:
        numbers = list(dict.fromkeys(item.tracking_number for item in items))
        size = int(getattr(self.adapter, "bulk_size", 1))
        by_number: dict[str, Outcome] = {}
        if size > 1:
            parts = [numbers[i : i + size] for i in range(0, len(numbers), size)]
            for found in await asyncio.gather(*(self._many(part) for part in parts)):
                by_number.update(found)
        else:
            answers = await asyncio.gather(*(self._one(n, self.adapter.poll) for n in numbers))
            by_number = {o.number: o for o in answers}
        return {item.id: by_number[item.tracking_number] for item in items}


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
    """One transaction per chunk: the shipments' new state (the ORM batches the
    UPDATEs), their checkpoints and timeline entries in multi-row inserts, and any new
    staff alert in the outbox, all or nothing."""
    ids = list(outcomes)
    for start in range(0, len(ids), WRITE_CHUNK):
        chunk = ids[start : start + WRITE_CHUNK]
        async with unit_of_work(db) as session:
            await lock_installation(session, installation_id)
            rows = Rows()
            shipments = await session.scalars(select(Shipment).where(Shipment.id.in_(chunk)))
            for shipment in shipments:
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
                    if fold(shipment, outcome.update, now, rows):
                        stats.changed += 1
                    if await alerts.raise_alerts(session, shipment, now, stalled_days):
                        stats.alerts.append(shipment.id)
                elif outcome.error is not None:
                    _after_failure(shipment, outcome.error, now)
            await rows.write(session)


async def _write_no_account(
    db: Database, installation_id: int, outcomes: dict[int, Outcome], now: datetime
) -> None:
    async with unit_of_work(db) as session:
        rows = await session.scalars(select(Shipment).where(Shipment.id.in_(list(outcomes))))
        for shipment in rows:
            error = outcomes[shipment.id].error
            shipment.last_error = str(error)
            shipment.next_poll_at = None if shipment.carrier == "manual" else now + NO_ACCOUNT_RETRY


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


@dataclass
class _Round:
    db: Database
    http: httpx.AsyncClient
    secrets_box: SecretBox
    batch: int
    stalled_days: float
    clock: Callable[[], datetime]
    rates: RateStore
    until: float | None
    stats: RoundStats = field(default_factory=RoundStats)
    writer: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def claim(self, installation_id: int, carrier: str) -> list[Due]:
        async with unit_of_work(self.db) as session:
            due = await claim_due(
                session, self.clock(), self.batch, installation_id=installation_id, carrier=carrier
            )
        self.stats.claimed += len(due)
        return due

    def more(self, claimed: int) -> bool:
        """Claim again? Only in a timed run, while this account had a full batch."""
        return self.until is not None and claimed >= self.batch and time.monotonic() < self.until

    async def run_account(self, installation_id: int, carrier: str) -> None:
        account = await _account(self.db, installation_id, carrier)
        if account is None or carrier == "manual":
            error = CarrierError(f"no {carrier} account is configured for this shop")
            while due := await self.claim(installation_id, carrier):
                outcomes = {i.id: Outcome(i.tracking_number, error=error) for i in due}
                self.stats.no_account += len(due)
                async with self.writer:
                    await _write_no_account(self.db, installation_id, outcomes, self.clock())
                if not self.more(len(due)):
                    break
            return
        now = self.clock()
        if account.blocked_until is not None and account.blocked_until > now:
            wait = (account.blocked_until - now).total_seconds()
            blocked = RateLimited("the carrier asked us to wait", wait)
            while due := await self.claim(installation_id, carrier):
                held = {i.id: Outcome(i.tracking_number, error=blocked) for i in due}
                async with self.writer:
                    await _write(self.db, installation_id, held, now, self.stalled_days, self.stats)
                self.stats.rate_limited += len(due)
                if not self.more(len(due)):
                    break
            return
        limiter = CarrierLimiter(
            account.max_concurrency,
            account.requests_per_second,
            store=self.rates,
            key=f"account:{account.id}",
            share=True,
        )
        poller = _Poller(adapter_for(account, carrier, self.http, self.secrets_box), limiter)
        started = time.monotonic()
        try:
            while True:
                due = await self.claim(installation_id, carrier)
                chunks = [due[i : i + WRITE_CHUNK] for i in range(0, len(due), WRITE_CHUNK)]
                await asyncio.gather(*(self._chunk(poller, installation_id, c) for c in chunks))
                if (pause := limiter.blocked_for) is not None:
                    # Other workers learn of the 429 from the account; this one waits it out
                    # if the round has time left, then takes the held parcels again.
                    async with self.writer:
                        await _block(self.db, account.id, self.clock() + timedelta(seconds=pause))
                    if self.until is None or time.monotonic() + pause >= self.until:
                        break
                    await asyncio.sleep(pause)
                    limiter.unblock()
                    continue
                if not self.more(len(due)):
                    break
        finally:
            await limiter.close()
        elapsed = max(time.monotonic() - started, 1e-6)
        label = f"{installation_id}:{carrier}"
        self.stats.max_in_flight[label] = limiter.max_in_flight
        self.stats.requests_per_second[label] = poller.requests / elapsed
        self.stats.requests += poller.requests

    async def _chunk(self, poller: _Poller, installation_id: int, chunk: list[Due]) -> None:
        # Chunks queue for the limiter in order, so an early chunk is written while later
        # ones are still being polled: the carrier never waits for the database.
        outcomes = await poller.poll(chunk)
        self.stats.polled += sum(1 for o in outcomes.values() if o.update is not None)
        self.stats.failed += sum(1 for o in outcomes.values() if o.error is not None)
        self.stats.rate_limited += sum(
            1 for o in outcomes.values() if isinstance(o.error, RateLimited)
        )
        async with self.writer:  # one writer per round: SQLite has one write lock anyway
            await _write(
                self.db, installation_id, outcomes, self.clock(), self.stalled_days, self.stats
            )


async def poll_round(
    db: Database,
    http: httpx.AsyncClient,
    secrets_box: SecretBox,
    *,
    batch: int,
    stalled_days: float,
    clock: Callable[[], datetime] = utcnow,
    rates: RateStore | None = None,
    until: float | None = None,
) -> RoundStats:
    """Poll what is due now, every carrier account in parallel within its own limits:
    at most `batch` parcels per account, or, given `until` (a `time.monotonic()`
    deadline), batch after batch until the account has nothing due or time is up."""
    run = _Round(db, http, secrets_box, batch, stalled_days, clock, rates or PROCESS_RATES, until)
    async with db.session() as session:
        groups = await due_accounts(session, clock())
    await asyncio.gather(*(run.run_account(i, c) for i, c in groups))
    return run.stats
