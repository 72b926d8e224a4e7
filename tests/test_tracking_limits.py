"""Carrier rate limits hold across worker processes: two processes polling one account
through Redis stay under the carrier's limit together (while per-process limits alone
exceed it), the database keeps one schedule for every process without Redis, a 429
wakes every waiting request, and a timed round waits a 429 out and carries on."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx
import pytest

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.settings import Settings
from plugin.tracking import accounts, limits
from plugin.tracking.carriers.base import AccountConfig, CarrierError
from plugin.tracking.carriers.russian_post import RussianPostAdapter
from plugin.tracking.limits import CarrierLimiter, DatabaseRates, LocalRates, RedisRates
from plugin.tracking.models import CarrierAccount, Shipment
from plugin.tracking.polling import poll_round
from plugin.tracking.statuses import Status
from tests.carrier_doubles import CdekDouble, RussianPostDouble
from tests.conftest import new_installation

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BOX = accounts.box("test-secret-key-not-for-production")
CREDENTIALS = {"login": "rp-login", "password": "rp-password"}
FUTURE = datetime(2027, 10, 1, 9, 0, tzinfo=UTC)
CARRIER_LIMIT = 10  # requests per second the carrier double allows
ACCOUNT_RATE = 8.0  # what the shop configured for the account (all workers together)
PER_WORKER = 12


async def _polls(url: str, store: limits.RateStore, key: str, numbers: list[str]) -> int:
    """One worker: polls the numbers within the account's limits; returns its 429s."""
    limited = 0
    async with httpx.AsyncClient(timeout=10) as http:
        adapter = RussianPostAdapter(http, AccountConfig(url, CREDENTIALS))
        limiter = CarrierLimiter(4, ACCOUNT_RATE, store=store, key=key)

        async def one(number: str) -> None:
            nonlocal limited
            async with limiter:
                try:
                    await adapter.poll(number)
                except CarrierError as exc:
                    limited += "too many" in str(exc).lower()

        await asyncio.gather(*(one(n) for n in numbers))
        await limiter.close()
    return limited


def _other_worker(
    url: str,
    shared: bool,
    key: str,
    numbers: list[str],
    ready: EventType,
    go: EventType,
    out: Any,
) -> None:
    """The second worker process (spawned: nothing shared but Redis)."""

    async def main() -> int:
        store: limits.RateStore = RedisRates(REDIS_URL) if shared else LocalRates()
        ready.set()
        go.wait(60)
        try:
            return await _polls(url, store, key, numbers)
        finally:
            await limits.close_store(store)

    out.put(asyncio.run(main()))


async def _two_workers(post: RussianPostDouble, shared: bool) -> tuple[float, int]:
    """Two processes poll one account at once; (seconds taken, 429s the carrier sent)."""
    key = f"test:{uuid.uuid4().hex}"
    numbers = [f"RA{n:09d}RU" for n in range(2 * PER_WORKER)]
    for number in numbers:
        post.set_history(
            number, [(1, 1, "Прием", "Единичный", "2027-09-20T10:00:00.000+03:00", "101000", "М")]
        )
    spawn = multiprocessing.get_context("spawn")
    ready, go, out = spawn.Event(), spawn.Event(), spawn.Queue()
    worker = spawn.Process(
        target=_other_worker,
        args=(post.base_url, shared, key, numbers[PER_WORKER:], ready, go, out),
    )
    worker.start()
    store: limits.RateStore = RedisRates(REDIS_URL) if shared else LocalRates()
    try:
        assert await asyncio.to_thread(ready.wait, 60), "the second worker did not start"
        post.rate_limited = 0
        go.set()
        started = time.monotonic()
        mine = await _polls(post.base_url, store, key, numbers[:PER_WORKER])
        theirs = await asyncio.to_thread(out.get, True, 60)
        elapsed = time.monotonic() - started
    finally:
        await limits.close_store(store)
        await asyncio.to_thread(worker.join, 30)
    assert mine + theirs == post.rate_limited
    return elapsed, post.rate_limited


async def test_redis_keeps_one_rate_for_workers_in_two_processes() -> None:
    with RussianPostDouble(rate_limit=CARRIER_LIMIT) as post:
        # Each process on its own: together twice the account's rate, over the limit.
        _, over = await _two_workers(post, shared=False)
        assert over > 0
        elapsed, limited = await _two_workers(post, shared=True)
    assert limited == 0
    # 24 requests at 8 a second between them: about 3 s, not the 1.5 s each alone takes.
    assert elapsed >= (2 * PER_WORKER - 1) / ACCOUNT_RATE - 0.3


@pytest.fixture
async def second_db(settings: Settings) -> AsyncIterator[Database]:
    """Another engine on the same database: what another worker process holds."""
    other = Database(settings)
    yield other
    await other.dispose()


async def test_database_and_redis_hand_out_one_schedule(db: Database, second_db: Database) -> None:
    key = f"test:{uuid.uuid4().hex}"
    a, b = DatabaseRates(db), DatabaseRates(second_db)
    first = await a.reserve(key, 5, 0.1)
    second = await b.reserve(key, 5, 0.1)
    assert first == pytest.approx(0.0, abs=0.05)
    # The second worker's slots start where the first one's end.
    assert 0.25 < second <= 0.5 + 0.01
    await asyncio.sleep(1.2)
    assert await b.reserve(key, 1, 0.1) == pytest.approx(0.0, abs=0.05)  # no catching up

    one, two = RedisRates(REDIS_URL), RedisRates(REDIS_URL)
    try:
        first = await one.reserve(key, 5, 0.1)
        second = await two.reserve(key, 5, 0.1)
        assert first == pytest.approx(0.0, abs=0.05)
        assert 0.4 < second <= 0.5 + 0.001
    finally:
        await one.close()
        await two.close()


async def test_the_store_follows_the_deployment(db: Database) -> None:
    redis_store = limits.store_for(REDIS_URL, db)
    assert isinstance(redis_store, RedisRates)
    await limits.close_store(redis_store)
    without = limits.store_for("", db)
    if db.dialect == "postgresql":
        assert isinstance(without, DatabaseRates)
    else:  # a SQLite install runs its jobs in its one process
        assert without is limits.PROCESS_RATES


async def test_a_429_wakes_every_waiting_request() -> None:
    limiter = CarrierLimiter(8, 1.0)  # one start a second
    entered: list[float] = []
    started = time.monotonic()

    async def one() -> None:
        async with limiter:
            entered.append(time.monotonic() - started)

    first = asyncio.create_task(one())
    await first
    waiting = [asyncio.create_task(one()) for _ in range(4)]
    await asyncio.sleep(0.1)
    limiter.block(30.0)
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=1.0)
    assert len(entered) == 5
    assert max(entered) < 1.0


async def test_a_timed_round_waits_out_a_429_and_polls_the_rest(db: Database) -> None:
    installation_id = await new_installation(db)
    with CdekDouble(rate_limit=5) as cdek:
        async with unit_of_work(db) as session:
            await accounts.configure(
                session,
                BOX,
                installation_id=installation_id,
                carrier="cdek",
                credentials={"client_id": "cdek-id", "client_secret": "cdek-secret"},
                base_url=cdek.base_url,
                max_concurrency=8,
                requests_per_second=1000,  # misconfigured: the carrier will say 429
            )
            for n in range(15):
                number = f"66{n:08d}"
                cdek.set_statuses(number, [("CREATED", "Создан", "2027-09-30T10:00:00+0300", "М")])
                session.add(
                    Shipment(
                        installation_id=installation_id,
                        fulfillment_saleor_id=f"F-{number}",
                        order_saleor_id=f"O-{number}",
                        tracking_number=number,
                        carrier="cdek",
                        carrier_source="staff",
                        status=Status.PENDING,
                        shipped_at=FUTURE - timedelta(days=1),
                        status_changed_at=FUTURE - timedelta(days=1),
                        source_updated_at=FUTURE - timedelta(days=1),
                        next_poll_at=FUTURE,
                    )
                )
        origin = utcnow()

        def clock() -> datetime:
            return FUTURE + (utcnow() - origin)  # the shop's time runs on

        async with httpx.AsyncClient(timeout=10) as http:
            stats = await poll_round(
                db,
                http,
                BOX,
                batch=100,
                stalled_days=5,
                clock=clock,
                until=time.monotonic() + 30,
            )
        assert cdek.rate_limited > 0
    assert stats.rate_limited > 0
    assert stats.polled == 15  # every parcel, after waiting the 429s out
    async with db.session() as session:
        statuses = set(
            await session.scalars(
                Shipment.__table__.select()
                .with_only_columns(Shipment.status)
                .where(Shipment.installation_id == installation_id)
            )
        )
        account = await session.scalar(
            CarrierAccount.__table__.select()
            .with_only_columns(CarrierAccount.blocked_until)
            .where(CarrierAccount.installation_id == installation_id)
        )
    assert statuses == {Status.INFO_RECEIVED}
    assert account is not None  # other workers learnt of the 429


async def test_an_unreachable_store_falls_back_to_pacing_this_process() -> None:
    store = RedisRates("redis://127.0.0.1:1/0")  # nothing listens there
    limiter = CarrierLimiter(4, 10.0, store=store, key=f"test:{uuid.uuid4().hex}")
    started = time.monotonic()
    try:
        for _ in range(4):
            async with limiter:
                pass
    finally:
        await limiter.close()
        await store.close()
    # Four starts at ten a second: still paced, not refused.
    assert time.monotonic() - started >= 0.28


async def test_each_429_slows_the_round_down_to_a_floor() -> None:
    limiter = CarrierLimiter(4, 20.0)
    for _ in range(10):
        limiter.block(1.0)
        limiter.unblock()
    started = time.monotonic()
    for _ in range(6):
        async with limiter:
            pass
    # Five gaps at 85 % of 20 a second (0.294 s), not at 20 a second (0.25 s).
    assert time.monotonic() - started >= 5 / (20.0 * limits.SLOWEST) - 0.02
