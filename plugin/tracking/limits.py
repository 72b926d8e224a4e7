"""Carrier rate limits shared by every worker process.

A carrier counts an account's requests wherever they come from, so the pace is kept in
one shared schedule per account (GCRA: the next free slot time). A worker reserves a few
slots at a time and spaces them itself; slots that went stale while the worker was busy
are dropped, never spent in a burst. Stores: Redis when REDIS_URL is set (its clock is
the shared one), the database otherwise (every process of a Redis-less install shares
it), or a process-local schedule (one process only: benchmark baseline, unit tests).
The concurrency limit stays per process (a connection pool is a process's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from typing import Any, Protocol

from sqlalchemy import case, update
from sqlalchemy.dialects import postgresql, sqlite

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.tracking.models import RateSlot

logger = logging.getLogger(__name__)

REDIS_PREFIX = "crm:tracking:rate:"
# After each 429 a round paces the account 5 % slower, down to 80 % of its paced rate.
SLOW_DOWN = 0.95
SLOWEST = 0.80
# The account's rate is the carrier's limit; its server counts arrivals, which network and
# scheduling jitter bunch together: we start at most this share of it in any second.
HEADROOM = 0.9
# Slots reserved per round trip to the database (in seconds' worth; the next block is
# fetched while half of this one is left, so a slow transaction stalls nobody).
DB_BLOCK_SECONDS = 0.5

# KEYS[1]: the account's next free slot (seconds, Redis clock). ARGV: count, interval.
# Returns the seconds from now until the first reserved slot (a string: Lua numbers
# would be truncated to integers on the way back).
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local count = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + count * interval
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX',
           math.ceil((after - now) * 1000) + 60000)
return string.format('%.6f', tat - now)
"""


class RateStore(Protocol):
    block_seconds: float

    async def reserve(self, key: str, count: int, interval: float) -> float:
        """Reserve `count` slots `interval` apart; seconds from now to the first one."""


class LocalRates:
    """One process's schedule (nothing shared)."""

    block_seconds = 0.0

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    async def reserve(self, key: str, count: int, interval: float) -> float:
        now = time.monotonic()
        start = max(self._next.get(key, 0.0), now)
        self._next[key] = start + count * interval
        return start - now


PROCESS_RATES = LocalRates()


class RedisRates:
    """The schedule in Redis, advanced atomically by a Lua script on Redis's clock."""

    block_seconds = 0.0

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._script: Any = self._redis.register_script(RESERVE_LUA)

    async def reserve(self, key: str, count: int, interval: float) -> float:
        value = await self._script(keys=[REDIS_PREFIX + key], args=[count, f"{interval:.9f}"])
        return float(value)

    async def close(self) -> None:
        await self._redis.aclose()


class DatabaseRates:
    """The schedule in `tracking_rate_slots`: one conditional UPDATE per reservation
    (wall clock of the worker's host, so hosts need NTP)."""

    block_seconds = DB_BLOCK_SECONDS

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, key: str, count: int, interval: float) -> float:
        span = count * interval
        async with unit_of_work(self._db) as session:
            now = time.time()
            insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
            await session.execute(
                insert(RateSlot).values(key=key, next_at=0.0).on_conflict_do_nothing()
            )
            after = await session.scalar(
                update(RateSlot)
                .where(RateSlot.key == key)
                .values(next_at=case((RateSlot.next_at < now, now), else_=RateSlot.next_at) + span)
                .returning(RateSlot.next_at)
            )
        return float(after or now + span) - span - now


_semaphores: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _semaphore(key: str, concurrency: int) -> asyncio.Semaphore:
    """One semaphore per account and event loop: rounds running side by side in one
    process (overlapping ticks) share the account's concurrency."""
    per_loop = _semaphores.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((key, concurrency), asyncio.Semaphore(concurrency))


def store_for(redis_url: str, db: Database) -> RateStore:
    """Redis when there is one; else the database on PostgreSQL (every process of the
    install shares it); else, on SQLite, this process's own schedule: a SQLite install
    runs its jobs in the one web process (and a reservation would wait for SQLite's
    single write lock behind every polling write)."""
    if redis_url:
        return RedisRates(redis_url)
    if db.dialect == "postgresql":
        return DatabaseRates(db)
    return PROCESS_RATES


async def close_store(store: RateStore) -> None:
    if isinstance(store, RedisRates):
        await store.close()


class CarrierLimiter:
    """At most `concurrency` requests in flight from this process (with `share`, across
    every round of the process) and `rate` starts a second for the account across all
    processes (the store's schedule); after a 429 nobody here starts before the
    carrier's Retry-After. Must be created inside the running event loop."""

    def __init__(
        self,
        concurrency: int,
        rate: float,
        *,
        store: RateStore | None = None,
        key: str = "local",
        share: bool = False,
    ) -> None:
        self._slots = _semaphore(key, concurrency) if share else asyncio.Semaphore(concurrency)
        self._interval = self._base_interval = 1.0 / (rate * HEADROOM)
        self._store: RateStore = store or LocalRates()
        self._key = key
        self._block = max(1, int(rate * self._store.block_seconds))
        self._reserved: deque[float] = deque()
        self._ahead: asyncio.Future[list[float]] | None = None
        self._starts: deque[float] = deque()
        self._per_window = max(1, int(rate * HEADROOM))
        self._start_lock = asyncio.Lock()
        self._blocked = asyncio.Event()
        self._lock = asyncio.Lock()
        self.blocked_for: float | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0

    async def _fetch(self) -> list[float]:
        try:
            offset = await self._store.reserve(self._key, self._block, self._interval)
        except Exception as exc:  # Redis or the database is away: pace this process alone
            logger.warning("rate store unavailable (%s); pacing %s locally", exc, self._key)
            offset = await PROCESS_RATES.reserve(self._key, self._block, self._interval)
        first = time.monotonic() + offset
        return [first + i * self._interval for i in range(self._block)]

    async def _next_slot(self) -> float:
        async with self._lock:
            now = time.monotonic()
            # A slot more than one interval in the past was lost: spending it now would
            # be a burst the carrier counts.
            while self._reserved and self._reserved[0] < now - self._interval:
                self._reserved.popleft()
            if not self._reserved:
                ahead, self._ahead = self._ahead, None
                self._reserved.extend(await ahead if ahead else await self._fetch())
                now = time.monotonic()
                while len(self._reserved) > 1 and self._reserved[0] < now - self._interval:
                    self._reserved.popleft()
            slot = self._reserved.popleft()
            if self._block > 1 and self._ahead is None and len(self._reserved) <= self._block // 2:
                self._ahead = asyncio.ensure_future(self._fetch())
            return slot

    async def close(self) -> None:
        """Drop a block fetched ahead and not needed any more."""
        if self._ahead is not None:
            self._ahead.cancel()
            with contextlib.suppress(BaseException):
                await self._ahead
            self._ahead = None

    def block(self, seconds: float) -> None:
        """The carrier answered 429: wake every request waiting for its slot (they
        give up instead of spending the time), and go a little slower from now on (the
        carrier counts differently from us: clocks, network jitter)."""
        self.blocked_for = seconds
        self._interval = min(self._interval / SLOW_DOWN, self._base_interval / SLOWEST)
        self._per_window = max(1, int(1.0 / self._interval))
        self._blocked.set()

    def unblock(self) -> None:
        self.blocked_for = None
        self._blocked.clear()

    async def _sleep_until(self, moment: float) -> None:
        wait = moment - time.monotonic()
        if wait > 0 and self.blocked_for is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._blocked.wait(), wait)

    async def _pace(self) -> None:
        await self._sleep_until(await self._next_slot())
        # This process's own starts, as the carrier counts them: a busy event loop that
        # woke several requests late never lets them out in one burst.
        async with self._start_lock:
            while self.blocked_for is None:
                now = time.monotonic()
                while self._starts and now - self._starts[0] >= 1.0:
                    self._starts.popleft()
                if len(self._starts) < self._per_window:
                    self._starts.append(now)
                    return
                await self._sleep_until(self._starts[0] + 1.0)

    async def __aenter__(self) -> CarrierLimiter:
        """Callers check `blocked_for` inside: a blocked limiter lets them in at once."""
        await self._slots.acquire()
        try:
            if self.blocked_for is None:
                await self._pace()
        except BaseException:
            self._slots.release()
            raise
        self.in_flight += 1
        self.started += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._slots.release()
