"""Segment benchmark on PostgreSQL: a synthetic shop, every built-in segment and RFM.

Generates PROFILES customers with about ORDERS_PER_PROFILE orders each (skewed: a few
customers buy a lot, most buy once or twice), then measures in one run:
- baseline: one plain `GROUP BY profile_id` scan over all orders;
- the first full refresh (RFM + every built-in segment, memberships created);
- a steady full refresh one day later (every segment; only changed memberships written);
- the scheduled refresh a minute after that (RFM, scores and the time-driven segments:
  the others are kept current by the folds and re-checked by the hourly full refresh);
- single-customer re-evaluation with 30 segments defined (p50/p95 over 300 customers).

Goals (issue #3): full refresh ≤ 30 s and ≤ 3× the baseline; single-customer p95 ≤ 5 ms.
Prints one JSON line: {"bench": "segments", ...}. `--profiles 20000` for a quick run;
`--keep` keeps the database, `--reuse <database>` measures it again without generating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

EXTRA_SEGMENTS: list[dict[str, Any]] = [
    {"field": "city", "op": "in", "value": ["Paris", "Lyon"]},
    {"field": "utm_source", "op": "eq", "value": "newsletter"},
    {"field": "total_spent", "op": "between", "value": [100, 500]},
    {"field": "average_order_value", "op": "gte", "value": 150},
    {"field": "days_since_last_order", "op": "between", "value": [30, 60]},
    {"field": "rfm_cell", "op": "eq", "value": "Champions"},
    {"field": "rfm_cell", "op": "in", "value": ["At risk", "Can't lose"]},
    {"ordered": {"at_least": 2, "within_days": 90}},
    {"ordered": {"at_least": 1, "status": "cancelled"}},
    {"ordered": {"at_least": 1, "status": "refunded"}},
    {"not": {"field": "utm_source", "op": "is_set"}},
    {
        "all": [
            {"field": "country", "op": "eq", "value": "FR"},
            {"field": "orders_count", "op": "gte", "value": 3},
        ]
    },
    {
        "any": [
            {"field": "city", "op": "eq", "value": "Berlin"},
            {"field": "city", "op": "eq", "value": "Madrid"},
        ]
    },
    {"field": "first_order_at", "op": "after", "value": {"days_ago": 365}},
    {"field": "paid_orders_count", "op": "between", "value": [2, 4]},
    {"field": "rfm_monetary", "op": "gte", "value": 4},
    {"ordered": {"at_least": 3, "paid_only": True}},
    {"field": "email", "op": "starts_with", "value": "p1"},
    {"field": "days_since_joined", "op": "lte", "value": 180},
    {"abandoned_checkout": {"quiet_minutes": 30, "within_hours": 24}},
    {"field": "cancelled_orders_count", "op": "gte", "value": 1},
    {"field": "language", "op": "eq", "value": "fr-FR"},
]


def step(message: str) -> None:
    print(f"[bench segments] {message}", file=sys.stderr, flush=True)


GENERATE = """
INSERT INTO profiles (installation_id, email, currency, city, country, language, utm_source,
    date_joined, orders_count, paid_orders_count, cancelled_orders_count, refunded_orders_count,
    total_spent, average_order_value, field_times, created_at, updated_at)
SELECT $1, 'p' || g || '@example.com', 'USD',
    (ARRAY['Paris','Lyon','Berlin','Madrid','London','Rome'])[1 + g % 6],
    (ARRAY['FR','FR','DE','ES','GB','IT'])[1 + g % 6],
    (ARRAY['fr-FR','fr-FR','de-DE','es-ES','en-GB','it-IT'])[1 + g % 6],
    (ARRAY['google','newsletter',NULL,'instagram'])[1 + g % 4],
    now() - (random() * 900) * interval '1 day', 0, 0, 0, 0, 0, 0, '{}', now(), now()
FROM generate_series(1, $2) AS g;
"""
ORDERS = """
INSERT INTO orders (installation_id, saleor_id, profile_id, number, status, is_paid,
    charge_status, currency, total_gross, total_net, total_tax, subtotal_gross, shipping_gross,
    total_charged, total_refunded, voucher_code, placed_at, source_updated_at,
    created_at, updated_at)
SELECT $1, 'o' || g, p.first_id + floor($2 * power(random(), 1.6))::int, g::text,
    CASE WHEN random() < 0.05 THEN 'CANCELED' ELSE 'FULFILLED' END, true, 'FULL', 'USD',
    t.total, t.total, 0, t.total, 0, t.total,
    CASE WHEN random() < 0.02 THEN 5 ELSE 0 END,
    CASE WHEN random() < 0.1 THEN 'SALE' ELSE NULL END,
    now() - (random() * 730) * interval '1 day', now(), now(), now()
FROM generate_series(1, $3) AS g,
     LATERAL (SELECT round((10 + random() * 290)::numeric, 2) AS total) t,
     (SELECT min(id) AS first_id FROM profiles WHERE installation_id = $1) p;
"""
AGGREGATES = """
UPDATE profiles SET orders_count = a.n, paid_orders_count = a.n, total_spent = a.spent,
    average_order_value = round(a.spent / a.n, 2), first_order_at = a.first,
    last_order_at = a.last, cancelled_orders_count = a.cancelled
FROM (SELECT profile_id, count(*) FILTER (WHERE status <> 'CANCELED') AS n,
             coalesce(sum(total_charged - total_refunded) FILTER (WHERE status <> 'CANCELED'), 0)
                 AS spent,
             min(placed_at) FILTER (WHERE status <> 'CANCELED') AS first,
             max(placed_at) FILTER (WHERE status <> 'CANCELED') AS last,
             count(*) FILTER (WHERE status = 'CANCELED') AS cancelled
      FROM orders WHERE installation_id = $1 GROUP BY profile_id) a
WHERE profiles.id = a.profile_id AND a.n > 0;
"""
CHECKOUTS = """
INSERT INTO checkouts (installation_id, saleor_id, profile_id, currency, total_gross,
    subtotal_gross, lines_count, quantity, state, started_at, source_updated_at,
    created_at, updated_at)
SELECT $1, 'c' || id, id, 'USD', 50, 50, 2, 2, 'OPEN',
    now() - random() * interval '3 days', now() - random() * interval '3 days', now(), now()
FROM profiles WHERE installation_id = $1 AND id % 20 = 0;
"""
BASELINE = (
    "SELECT count(*) FROM (SELECT profile_id, count(*), sum(total_gross) FROM orders"
    " WHERE installation_id = $1 GROUP BY profile_id) s"
)


async def generate(db_url: str, installation_id: int, profiles: int, orders: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(GENERATE, installation_id, profiles)
        await conn.execute(ORDERS, installation_id, profiles, orders)
        await conn.execute(AGGREGATES, installation_id)
        await conn.execute(CHECKOUTS, installation_id)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def timed_baseline(db_url: str, installation_id: int) -> float:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.fetchval(BASELINE, installation_id)  # warm the cache like the refresh gets
        started = time.perf_counter()
        await conn.fetchval(BASELINE, installation_id)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def measure(installation_id: int, figures: dict[str, Any]) -> None:
    from sqlalchemy import func, select

    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.profiles.models import Profile
    from plugin.segments.builtin import ensure_builtin_segments
    from plugin.segments.membership import (
        refresh_installation,
        refresh_segment,
    )
    from plugin.segments.models import Segment
    from plugin.segments.rfm import refresh_rfm
    from plugin.settings import Settings

    db = Database(Settings())
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
    step("first full refresh (RFM + built-in segments)")
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        first = await refresh_installation(session, installation_id, now, dialect=db.dialect)
    figures["first_refresh_seconds"] = round(time.perf_counter() - started, 2)
    figures["members_created"] = sum(len(c.entered) for c in first.values())

    step("steady refresh one day later")
    later = now + timedelta(days=1)
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        steady = await refresh_installation(session, installation_id, later, dialect=db.dialect)
    figures["steady_refresh_seconds"] = round(time.perf_counter() - started, 2)
    figures["steady_memberships_changed"] = sum(
        len(c.entered) + len(c.left) for c in steady.values()
    )
    step("scheduled refresh a minute later (time-driven segments only)")
    minute = later + timedelta(minutes=1)
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, minute, dialect=db.dialect)
    figures["minute_refresh_seconds"] = round(time.perf_counter() - started, 2)
    # Where the time goes, part by part (same work as the steady refresh, one day on).
    breakdown: dict[str, float] = {}
    even_later = later + timedelta(days=1)
    async with unit_of_work(db) as session:
        started = time.perf_counter()
        await refresh_rfm(session, installation_id, even_later)
        breakdown["rfm"] = round(time.perf_counter() - started, 3)
        for segment in await session.scalars(
            select(Segment).where(Segment.installation_id == installation_id)
        ):
            started = time.perf_counter()
            await refresh_segment(session, segment, even_later, dialect=db.dialect)
            breakdown[segment.key] = round(time.perf_counter() - started, 3)
    figures["steady_breakdown_seconds"] = breakdown

    async with unit_of_work(db) as session:
        for n, rule in enumerate(EXTRA_SEGMENTS):
            session.add(
                Segment(
                    installation_id=installation_id, key=f"extra_{n}", name=f"Extra {n}", rule=rule
                )
            )
    async with unit_of_work(db) as session:  # fill them, so re-evaluation finds the steady state
        await refresh_installation(session, installation_id, even_later, dialect=db.dialect)
    async with db.session() as session:
        segments = await session.scalar(
            select(func.count()).where(Segment.installation_id == installation_id)
        )
        ids = list(
            await session.scalars(
                select(Profile.id)
                .where(Profile.installation_id == installation_id)
                .order_by(func.random())
                .limit(300)
            )
        )
    figures["segments_defined"] = int(segments or 0)
    step(f"re-evaluating {len(ids)} customers one by one against {segments} segments")
    await time_single_customers(db, installation_id, ids, even_later, figures)
    await db.dispose()


async def time_single_customers(
    db: Any, installation_id: int, ids: list[int], at: datetime, figures: dict[str, Any]
) -> None:
    """Each customer re-evaluated against every segment in a transaction of its own, as a
    fold does: p50 and p95."""
    from plugin.kit.after_commit import unit_of_work
    from plugin.segments.membership import reevaluate_profiles

    timings = []
    for profile_id in ids:
        started = time.perf_counter()
        async with unit_of_work(db) as session:
            await reevaluate_profiles(session, installation_id, [profile_id], at)
        timings.append(time.perf_counter() - started)
    timings.sort()
    figures["single_profile_p50_ms"] = round(statistics.median(timings) * 1000, 2)
    figures["single_profile_p95_ms"] = round(timings[int(0.95 * (len(timings) - 1))] * 1000, 2)


async def measure_again(installation_id: int, figures: dict[str, Any]) -> None:
    """On a kept database (`--reuse`): the steady full refresh, the minute refresh and the
    single-customer re-evaluation once more, a day after its latest refresh."""
    from sqlalchemy import func, select

    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.profiles.models import Profile
    from plugin.segments.membership import refresh_installation
    from plugin.segments.models import Segment
    from plugin.settings import Settings

    db = Database(Settings())
    async with db.session() as session:
        latest = await session.scalar(
            select(func.max(Segment.refreshed_at)).where(Segment.installation_id == installation_id)
        )
    later = max(utcnow(), latest or utcnow()) + timedelta(days=1)
    step("steady full refresh a day after the latest")
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        steady = await refresh_installation(
            session, installation_id, later, dialect=db.dialect, full=True
        )
    figures["steady_refresh_seconds"] = round(time.perf_counter() - started, 2)
    figures["steady_memberships_changed"] = sum(
        len(c.entered) + len(c.left) for c in steady.values()
    )
    step("scheduled refresh a minute later (time-driven segments only)")
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        await refresh_installation(
            session, installation_id, later + timedelta(minutes=1), dialect=db.dialect
        )
    figures["minute_refresh_seconds"] = round(time.perf_counter() - started, 2)
    async with db.session() as session:
        figures["segments_defined"] = int(
            await session.scalar(
                select(func.count()).where(Segment.installation_id == installation_id)
            )
            or 0
        )
        ids = list(
            await session.scalars(
                select(Profile.id)
                .where(Profile.installation_id == installation_id)
                .order_by(func.random())
                .limit(300)
            )
        )
    step(f"re-evaluating {len(ids)} customers one by one")
    await time_single_customers(db, installation_id, ids, later, figures)
    await db.dispose()


# Analytics phase (issue #3 §4): the funnel follows checkouts to their orders, so the last
# 13 months get one converted checkout per order and an abandoned one per two orders (60 %
# with an e-mail). Added after the segment phases, so their figures are unchanged.
FUNNEL_ROWS = [
    """
INSERT INTO checkouts (installation_id, saleor_id, profile_id, email, currency, total_gross,
    subtotal_gross, lines_count, quantity, state, order_saleor_id, started_at,
    source_updated_at, created_at, updated_at)
SELECT $1, 'k' || o.id, o.profile_id, 'p' || o.profile_id || '@example.com', 'USD',
    o.total_gross, o.total_gross, 1, 1, 'CONVERTED', o.saleor_id,
    o.placed_at - interval '20 minutes', o.placed_at, now(), now()
FROM orders o WHERE o.installation_id = $1 AND o.placed_at > now() - interval '400 days';
""",
    """
INSERT INTO checkouts (installation_id, saleor_id, profile_id, email, currency, total_gross,
    subtotal_gross, lines_count, quantity, state, started_at, source_updated_at,
    created_at, updated_at)
SELECT $1, 'a' || o.id, o.profile_id,
    CASE WHEN random() < 0.6 THEN 'p' || o.profile_id || '@example.com' END, 'USD',
    o.total_gross, o.total_gross, 1, 1, 'OPEN', o.placed_at - interval '3 days',
    o.placed_at - interval '3 days', now(), now()
FROM orders o
WHERE o.installation_id = $1 AND o.placed_at > now() - interval '400 days' AND o.id % 2 = 0;
""",
]


async def measure_analytics(db_url: str, installation_id: int, figures: dict[str, Any]) -> None:
    """Funnel and cohort retention over the last 12 months (goal: each ≤ 2 s, warm).

    The rows are generated with SQL, so the reports' rollups are rebuilt once (as after an
    import), then read by the reports; folds keep them current from then on.
    """
    from plugin.analytics.cohorts import cohort_retention
    from plugin.analytics.funnel import funnel
    from plugin.analytics.period import Period
    from plugin.analytics.rollups import rebuild_installation
    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.settings import Settings

    step("analytics: checkouts for the funnel")
    started = time.perf_counter()
    conn = await asyncpg.connect(db_url)
    try:
        for statement in FUNNEL_ROWS:
            await conn.execute(statement, installation_id)
        await conn.execute("ANALYZE checkouts")
        figures["funnel_checkouts"] = await conn.fetchval(
            "SELECT count(*) FROM checkouts WHERE installation_id = $1", installation_id
        )
    finally:
        await conn.close()
    figures["analytics_generate_seconds"] = round(time.perf_counter() - started, 1)

    db = Database(Settings())
    step("analytics: rebuilding the rollups")
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        await rebuild_installation(session, installation_id)
    figures["analytics_rebuild_seconds"] = round(time.perf_counter() - started, 1)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("ANALYZE analytics_funnel_hourly, analytics_customer_months")
    finally:
        await conn.close()

    now = utcnow()
    period = Period(now - timedelta(days=365), now)
    for name, run in (
        ("funnel", lambda s: funnel(s, installation_id, period)),
        ("cohorts", lambda s: cohort_retention(s, installation_id, period, now=now)),
    ):
        step(f"analytics: {name}, last 12 months (first run, then again)")
        timings = []
        for _ in range(2):
            async with db.session() as session:
                started = time.perf_counter()
                await run(session)
                timings.append(time.perf_counter() - started)
        figures[f"{name}_first_run_seconds"] = round(timings[0], 2)
        figures[f"{name}_seconds"] = round(timings[1], 2)
    await db.dispose()
    figures["goal_analytics_met"] = (
        figures["funnel_seconds"] <= 2 and figures["cohorts_seconds"] <= 2
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000, help="customers to generate")
    parser.add_argument("--orders-per-profile", type=float, default=5.0, help="average orders")
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="measure a kept database again (steady and minute refresh, one customer)",
    )
    args = parser.parse_args()
    orders = int(args.profiles * args.orders_per_profile)

    database = args.reuse or f"crm_bench_{uuid.uuid4().hex[:8]}"
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    figures: dict[str, Any] = {"bench": "segments", "database": database}
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"}

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def sizes() -> tuple[int, int, int]:
        conn = await asyncpg.connect(db_url)
        try:
            installation_id = int(await conn.fetchval("SELECT min(id) FROM installations"))
            customers = await conn.fetchval("SELECT count(*) FROM profiles")
            placed = await conn.fetchval("SELECT count(*) FROM orders")
            return installation_id, int(customers), int(placed)
        finally:
            await conn.close()

    if args.reuse:
        os.environ.update(env)
        installation_id, profiles, placed = asyncio.run(sizes())
        figures.update({"profiles": profiles, "orders": placed, "reused": True})
        step("baseline: one GROUP BY scan over the orders")
        baseline = asyncio.run(timed_baseline(db_url, installation_id))
        figures["baseline_group_by_seconds"] = round(baseline, 2)
        asyncio.run(measure_again(installation_id, figures))
        _ratios(figures, baseline)
        print(json.dumps(figures))
        return

    figures.update({"profiles": args.profiles, "orders": orders})
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    try:
        os.environ.update(env)
        subprocess.run(
            [sys.executable, "-m", "plugin.cli", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        installation_id = asyncio.run(_new_installation())
        step(f"generating {args.profiles:,} customers and {orders:,} orders")
        started = time.perf_counter()
        asyncio.run(generate(db_url, installation_id, args.profiles, orders))
        figures["generate_seconds"] = round(time.perf_counter() - started, 1)

        step("baseline: one GROUP BY scan over the orders")
        baseline = asyncio.run(timed_baseline(db_url, installation_id))
        figures["baseline_group_by_seconds"] = round(baseline, 2)
        asyncio.run(measure(installation_id, figures))
        figures["first_refresh_ratio_to_baseline"] = round(
            figures["first_refresh_seconds"] / baseline, 2
        )
        _ratios(figures, baseline)
        asyncio.run(measure_analytics(db_url, installation_id, figures))
    finally:
        if not args.keep:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    print(json.dumps(figures))


async def _new_installation() -> int:
    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.saleor.models import Installation
    from plugin.settings import Settings

    db = Database(Settings())
    async with unit_of_work(db) as session:
        row = Installation(
            saleor_api_url="http://127.0.0.1:1/graphql/",
            app_id="QXBwOjE=",
            token_encrypted="x",
            jwks={"keys": []},
            installed_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        installation_id = row.id
    await db.dispose()
    return installation_id


def _ratios(figures: dict[str, Any], baseline: float) -> None:
    figures["steady_refresh_ratio_to_baseline"] = round(
        figures["steady_refresh_seconds"] / baseline, 2
    )
    figures["goal_refresh_met"] = (
        figures["steady_refresh_seconds"] <= 30 and figures["steady_refresh_ratio_to_baseline"] <= 3
    )
    figures["goal_single_profile_met"] = figures["single_profile_p95_ms"] <= 5


if __name__ == "__main__":
    main()
