"""Courier polling benchmark: N active shipments polled against loopback carrier doubles.

Three carriers (AfterShip, CDEK, Russian Post), each a local double that enforces its own
rate limit (429 above it); each shop account is configured just under that limit. One
run measures:
- baseline: one tracking request per parcel sent straight to the doubles with the same
  concurrency and rate, no database (what the network and the doubles cost);
- a full polling round as the tick runs it: every carrier account claims its due parcels
  batch after batch from the durable schedule, polls them within its limits (AfterShip
  reads 50 numbers per request; CDEK and Russian Post have no bulk read), folds the
  answers in multi-row writes and reschedules, until nothing is due or the interval
  is spent. Rate limits go through the store the tick would use (`--redis-url`: Redis;
  else the database on PostgreSQL, this process on SQLite).

Goals (issue #7): the round keeps every per-carrier rate limit (no 429) and finishes
within the configured interval. Prints one JSON line: {"bench": "tracking", ...}.
`--shipments 2000` for a quick run; `--database-url postgresql://…` for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import plugin.db.models  # noqa: E402, F401  (every model: foreign keys resolve in workers)
from plugin.db.base import utcnow  # noqa: E402
from plugin.db.engine import Database  # noqa: E402
from plugin.db.migrate import upgrade  # noqa: E402
from plugin.kit.after_commit import unit_of_work  # noqa: E402
from plugin.saleor.models import Installation  # noqa: E402
from plugin.settings import Settings  # noqa: E402
from plugin.tracking import accounts, limits, polling  # noqa: E402
from plugin.tracking.carriers.aftership import AfterShipAdapter  # noqa: E402
from plugin.tracking.carriers.base import AccountConfig, Adapter, CarrierError  # noqa: E402
from plugin.tracking.carriers.cdek import CdekAdapter  # noqa: E402
from plugin.tracking.carriers.russian_post import RussianPostAdapter  # noqa: E402
from plugin.tracking.models import CarrierAccount, Shipment  # noqa: E402
from plugin.tracking.statuses import Status  # noqa: E402
from tests.carrier_doubles import AfterShipDouble, CdekDouble, RussianPostDouble  # noqa: E402

# carrier → (share of the shipments, the double's limit per second, concurrency)
CARRIERS = {"aftership": (0.5, 40, 8), "cdek": (0.3, 30, 6), "russian_post": (0.2, 20, 4)}
# Simulated network round trip of a carrier API, seconds.
LATENCY = 0.03
HEADROOM = 0.9  # accounts are configured at 90 % of the carrier's limit
BATCH = 2000  # the default TRACKING_POLL_BATCH


def log(message: str) -> None:
    print(f"[bench tracking] {message}", file=sys.stderr, flush=True)


def _doubles() -> dict[str, Any]:
    doubles: dict[str, Any] = {
        "aftership": AfterShipDouble(rate_limit=CARRIERS["aftership"][1], latency=LATENCY),
        "cdek": CdekDouble(rate_limit=CARRIERS["cdek"][1], latency=LATENCY),
        "russian_post": RussianPostDouble(rate_limit=CARRIERS["russian_post"][1], latency=LATENCY),
    }
    for double in doubles.values():
        double.start()
    return doubles


def _serve(conn: Connection, numbers: dict[str, list[str]]) -> None:
    """The carriers, in a process of their own (their CPU is not the app's)."""
    doubles = _doubles()
    _script(doubles, numbers)
    conn.send({name: d.base_url for name, d in doubles.items()})
    while (command := conn.recv()) != "stop":
        if command == "reset":
            for double in doubles.values():
                double.rate_limited = double.max_in_flight = 0
        conn.send(
            {
                name: {"rate_limited": d.rate_limited, "max_in_flight": d.max_in_flight}
                for name, d in doubles.items()
            }
        )
    for double in doubles.values():
        double.stop()
    conn.send("stopped")


class Carriers:
    """Controls the carrier doubles' process: URLs, counters (429s, peak in flight)."""

    def __init__(self, numbers: dict[str, list[str]]) -> None:
        self._conn, child = multiprocessing.get_context("fork").Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(child, numbers), daemon=True
        )
        self._process.start()
        self.urls: dict[str, str] = self._conn.recv()

    def counters(self, reset: bool = False) -> dict[str, dict[str, int]]:
        self._conn.send("reset" if reset else "stats")
        found: dict[str, dict[str, int]] = self._conn.recv()
        return found

    def stop(self) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(timeout=10)


def _numbers(total: int) -> dict[str, list[str]]:
    numbers: dict[str, list[str]] = {}
    start = 0
    for carrier, (share, _, _) in CARRIERS.items():
        count = round(total * share) if carrier != "russian_post" else total - start
        numbers[carrier] = [f"{carrier[:2].upper()}{n:09d}" for n in range(start, start + count)]
        start += count
    return numbers


def _script(doubles: dict[str, Any], numbers: dict[str, list[str]]) -> None:
    when = utcnow() - timedelta(hours=6)
    for number in numbers["aftership"]:
        doubles["aftership"].set_tracking(
            number, "InTransit", checkpoints=[(when.isoformat(), "InTransit", "Hub", "Leipzig")]
        )
    cdek_time = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    for number in numbers["cdek"]:
        doubles["cdek"].set_statuses(
            number, [("SENT_TO_TRANSIT_CITY", "Отправлен", cdek_time, "Москва")]
        )
    rp_time = when.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
    for number in numbers["russian_post"]:
        doubles["russian_post"].set_history(
            number, [(8, 1, "Обработка", "Покинуло место приема", rp_time, "101000", "Москва")]
        )


async def _seed(db: Database, numbers: dict[str, list[str]], urls: dict[str, str]) -> int:
    box = accounts.box("bench-secret")
    credentials = {
        "aftership": {"api_key": "as-key"},
        "cdek": {"client_id": "cdek-id", "client_secret": "cdek-secret"},
        "russian_post": {"login": "rp-login", "password": "rp-password"},
    }
    now = utcnow()
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=f"http://127.0.0.1:1/bench-{time.time_ns()}/graphql/",
            app_id="QXBwOjE=",
            token_encrypted="x",
            jwks={"keys": []},
            installed_at=now,
        )
        session.add(installation)
        await session.flush()
        for carrier, (_, limit, concurrency) in CARRIERS.items():
            await accounts.configure(
                session,
                box,
                installation_id=installation.id,
                carrier=carrier,
                credentials=credentials[carrier],
                base_url=urls[carrier],
                max_concurrency=concurrency,
                requests_per_second=limit * HEADROOM,
            )
        rows = []
        for carrier, carrier_numbers in numbers.items():
            for n, number in enumerate(carrier_numbers):
                rows.append(
                    {
                        "installation_id": installation.id,
                        "fulfillment_saleor_id": f"F-{carrier}-{n}",
                        "order_saleor_id": f"O-{carrier}-{n}",
                        "tracking_number": number,
                        "carrier": carrier,
                        "carrier_source": "pattern",
                        "status": Status.INFO_RECEIVED,
                        "shipped_at": now - timedelta(days=1),
                        "status_changed_at": now - timedelta(days=1),
                        "source_updated_at": now - timedelta(days=1),
                        "next_poll_at": now - timedelta(seconds=1),
                        "quiet": False,
                        "had_exception": False,
                        "poll_failures": 0,
                        "alerts_pending": False,
                    }
                )
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Shipment), rows[start : start + 1000])
        return installation.id


async def _baseline(
    urls: dict[str, str], numbers: dict[str, list[str]], errors: dict[str, int]
) -> float:
    """The same requests straight to the doubles, same concurrency and rate, no database."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
        credentials = {
            "aftership": {"api_key": "as-key"},
            "cdek": {"client_id": "cdek-id", "client_secret": "cdek-secret"},
            "russian_post": {"login": "rp-login", "password": "rp-password"},
        }

        async def carrier_run(carrier: str) -> None:
            _, limit, concurrency = CARRIERS[carrier]
            config = AccountConfig(urls[carrier], credentials[carrier])
            adapter: Adapter
            if carrier == "aftership":
                adapter = AfterShipAdapter(http, config)
            elif carrier == "cdek":
                adapter = CdekAdapter(http, config)
            else:
                adapter = RussianPostAdapter(http, config)
            limiter = polling.CarrierLimiter(concurrency, limit * HEADROOM)

            async def one(number: str) -> None:
                async with limiter:
                    try:
                        await adapter.poll(number)
                    except CarrierError as exc:
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

            await asyncio.gather(*(one(n) for n in numbers[carrier]))

        started = time.perf_counter()
        await asyncio.gather(*(carrier_run(c) for c in CARRIERS))
        return time.perf_counter() - started


async def _round(
    database_url: str, redis_url: str, interval: float, *, shared: bool
) -> tuple[polling.RoundStats, str]:
    """One worker's round, as the tick runs it: every account batch after batch until
    nothing is due or the interval is spent. `shared`: several workers run at once, so
    even on SQLite the limits go through a shared store (the database)."""
    db = Database(Settings(database_url=database_url))
    rates: limits.RateStore = (
        limits.DatabaseRates(db) if shared and not redis_url else limits.store_for(redis_url, db)
    )
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
            stats = await polling.poll_round(
                db,
                http,
                accounts.box("bench-secret"),
                batch=BATCH,
                stalled_days=5,
                rates=rates,
                until=time.monotonic() + interval,
            )
        return stats, type(rates).__name__
    finally:
        await limits.close_store(rates)
        await db.dispose()


def _worker(database_url: str, redis_url: str, interval: float, conn: Connection) -> None:
    """A worker process of its own (spawned: it shares only the database and Redis)."""
    stats, store = asyncio.run(_round(database_url, redis_url, interval, shared=True))
    conn.send((stats, store))


async def _rounds(
    database_url: str, redis_url: str, interval: float, workers: int
) -> tuple[polling.RoundStats, str]:
    """Several worker processes poll at once; their figures added up (peaks in flight
    are per process, so they add up too: what the carrier sees)."""
    spawn = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(workers):
        mine, theirs = spawn.Pipe()
        process = spawn.Process(target=_worker, args=(database_url, redis_url, interval, theirs))
        process.start()
        pipes.append(mine)
        processes.append(process)
    total = polling.RoundStats()
    store = ""
    for conn in pipes:
        stats, store = await asyncio.to_thread(conn.recv)
        in_flight = dict(total.max_in_flight)
        rates = dict(total.requests_per_second)
        total.add(stats)
        for key, peak in stats.max_in_flight.items():
            total.max_in_flight[key] = in_flight.get(key, 0) + peak
        for key, rate in stats.requests_per_second.items():
            total.requests_per_second[key] = rates.get(key, 0.0) + rate
    for process in processes:
        await asyncio.to_thread(process.join, 30)
    return total, store


async def run(
    shipments: int,
    interval: float,
    database_url: str,
    carriers: Carriers,
    numbers: dict[str, list[str]],
    redis_url: str = "",
    workers: int = 1,
) -> dict[str, Any]:
    settings = Settings(database_url=database_url)
    db = Database(settings)
    try:
        log(f"seeding {shipments} shipments")
        installation_id = await _seed(db, numbers, carriers.urls)
        log("baseline: plain requests to the doubles")
        baseline_errors: dict[str, int] = {}
        baseline = await _baseline(carriers.urls, numbers, baseline_errors)
        carriers.counters(reset=True)
        log("a full polling round through the scheduler")
        started = time.perf_counter()
        rps: dict[str, float] = {}
        in_flight: dict[str, int] = {}
        if workers == 1:
            stats, store = await _round(database_url, redis_url, interval, shared=False)
        else:
            stats, store = await _rounds(database_url, redis_url, interval, workers)
        polled, limited = stats.polled, stats.rate_limited
        for key, value in stats.requests_per_second.items():
            rps[key.split(":", 1)[1]] = value
        for key, peak in stats.max_in_flight.items():
            in_flight[key.split(":", 1)[1]] = peak
        elapsed = time.perf_counter() - started
        async with db.session() as session:
            moved = await session.scalar(
                select(func.count())
                .select_from(Shipment)
                .where(
                    Shipment.installation_id == installation_id,
                    Shipment.status == Status.IN_TRANSIT,
                )
            )
            blocked = await session.scalar(
                select(func.count())
                .select_from(CarrierAccount)
                .where(
                    CarrierAccount.installation_id == installation_id,
                    CarrierAccount.blocked_until.is_not(None),
                )
            )
        seen = carriers.counters()
        carrier_429 = {name: c["rate_limited"] for name, c in seen.items()}
        return {
            "bench": "tracking",
            "database": db.dialect,
            "shipments": shipments,
            "interval_seconds": interval,
            "baseline_seconds": round(baseline, 2),
            "baseline_errors": baseline_errors,
            "round_seconds": round(elapsed, 2),
            "round_vs_baseline": round(elapsed / baseline, 2),
            "polls_per_second": round(polled / elapsed, 1),
            "round_within_interval": elapsed <= interval,
            "rate_store": store,
            "workers": workers,
            "carrier_requests": stats.requests,
            "baseline_requests": shipments,
            "polled": polled,
            "status_changed": moved,
            "rate_limited_by_carriers": carrier_429,
            "limits_kept": all(v == 0 for v in carrier_429.values()) and not blocked,
            "carrier_limit_per_second": {c: v[1] for c, v in CARRIERS.items()},
            "observed_per_second": {c: round(v, 1) for c, v in rps.items()},
            "max_in_flight": in_flight,
            "max_in_flight_seen_by_carriers": {n: c["max_in_flight"] for n, c in seen.items()},
            "held_back_by_429": limited,
        }
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=300.0, help="the configured round, s")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--redis-url", default="", help="share the rate limits in Redis (else the database)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes polling at once (shared limits)"
    )
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='crm-bench-')}/bench.sqlite3"
    os.environ["DATABASE_URL"] = url
    upgrade(url)
    numbers = _numbers(args.shipments)
    carriers = Carriers(numbers)
    try:
        figures = asyncio.run(
            run(
                args.shipments,
                args.interval,
                url,
                carriers,
                numbers,
                args.redis_url,
                args.workers,
            )
        )
    finally:
        carriers.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
