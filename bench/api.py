"""GraphQL API benchmark on PostgreSQL: the customer card and a 100-row list page.

Builds a synthetic shop the way bench/segments.py does (or reuses one: `--reuse NAME`),
serves the real app with uvicorn on loopback, signs dashboard tokens with a local RSA key
whose JWKS is stored on the installation, and measures over HTTP, in one run:
- baseline: a trivial query (`{ viewer { email } }`: HTTP, token check, GraphQL);
- the customer card (profile, segments with why, 20 orders with lines, checkouts,
  20 timeline items, notes, messages, parcels with their checkpoints) for random customers;
- a 100-row customer list page (several sort orders, following cursors).

Goals (issue #4 §3): card p95 ≤ 20 ms, list page p95 ≤ 100 ms. Prints one JSON line:
{"bench": "api", ...}. `--profiles 100000` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import segments as segments_bench  # noqa: E402

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SALEOR_API_URL = "http://127.0.0.1:1/graphql/"
APP_ID = "QXBwOjE="
KID = "bench-key"

TRIVIAL = "{ viewer { email } }"
CARD = """
query Card($id: ID!) {
  customer(id: $id) {
    id email firstName lastName tags ordersCount paidOrdersCount
    totalSpent { amount currency } averageOrderValue { amount currency }
    firstOrderAt lastOrderAt rfm { cell } score prediction { pAlive }
    consent { email sms contacts { address status } }
    segments { segment { slug name memberCount } since why }
    orders(first: 20) { pageInfo { hasNextPage } edges { cursor node {
      id number total { amount } lines { productName quantity } } } }
    checkouts { id state total { amount } }
    timeline(first: 20) { edges { node { kind summary occurredAt } } }
    notes { text }
    messages(first: 10) { edges { node { subject state sentAt } } }
    shipments(first: 10) { edges { node { trackingNumber status checkpoints { status } } } }
  }
}
"""
PAGE = """
query Page($sort: CustomerSort, $after: String) {
  customers(first: 100, sortBy: $sort, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id email firstName lastName city country tags ordersCount
      totalSpent { amount currency } lastOrderAt rfm { cell } score }
  }
}
"""
SORTS: list[dict[str, str] | None] = [
    None,
    {"field": "LAST_ORDER_AT", "direction": "DESC"},
    {"field": "TOTAL_SPENT", "direction": "DESC"},
    {"field": "ORDERS_COUNT", "direction": "DESC"},
    {"field": "SCORE", "direction": "DESC"},
]

# The shop, as bench/segments.py generates it (copied: that file has its own owner).
GENERATE = """
INSERT INTO profiles (installation_id, email, first_name, last_name, currency, city, country,
    language, utm_source, date_joined, orders_count, paid_orders_count, cancelled_orders_count,
    refunded_orders_count, total_spent, average_order_value, score, field_times,
    created_at, updated_at)
SELECT $1, 'p' || g || '@example.com', 'First' || g, 'Last' || g, 'USD',
    (ARRAY['Paris','Lyon','Berlin','Madrid','London','Rome'])[1 + g % 6],
    (ARRAY['FR','FR','DE','ES','GB','IT'])[1 + g % 6],
    (ARRAY['fr-FR','fr-FR','de-DE','es-ES','en-GB','it-IT'])[1 + g % 6],
    (ARRAY['google','newsletter',NULL,'instagram'])[1 + g % 4],
    now() - (random() * 900) * interval '1 day', 0, 0, 0, 0, 0, 0,
    (random() * 100)::int, '{}', now(), now()
FROM generate_series(1, $2) AS g;
"""
IDENTITIES = """
INSERT INTO identities (installation_id, profile_id, kind, value, marketing_consent,
    consent_updated_at, consent_source, created_at, updated_at)
SELECT $1, id, 'EMAIL', email, CASE WHEN id % 3 = 0 THEN 'GRANTED' END,
    CASE WHEN id % 3 = 0 THEN now() END, CASE WHEN id % 3 = 0 THEN 'bench' END, now(), now()
FROM profiles WHERE installation_id = $1;
"""
ORDERS = segments_bench.ORDERS
LINES = """
INSERT INTO order_lines (installation_id, order_id, saleor_id, product_name, quantity,
    quantity_fulfilled, unit_price_gross, total_price_gross, currency)
SELECT $1, id, 'l' || id, 'Product ' || (id % 500), 1, 1, total_gross, total_gross, 'USD'
FROM orders WHERE installation_id = $1;
"""
TIMELINE = """
INSERT INTO timeline_entries (installation_id, profile_id, occurred_at, kind, subject_type,
    subject_id, summary, dedup_key, recorded_at)
SELECT $1, profile_id, placed_at, 'order_created', 'order', saleor_id,
    'Order #' || number || ' placed', 'order:' || saleor_id, now()
FROM orders WHERE installation_id = $1;
"""
# A parcel with two checkpoints for every other order, two e-mails for every other customer.
SHIPMENTS = """
INSERT INTO shipments (installation_id, fulfillment_saleor_id, order_saleor_id, order_number,
    profile_id, tracking_number, carrier, carrier_source, status, shipped_at, status_changed_at,
    had_exception, quiet, poll_failures, alerts_pending, source_updated_at)
SELECT $1, 'f' || id, saleor_id, number, profile_id, 'TRK' || id, 'manual', 'staff',
    'InTransit', placed_at + interval '1 day', placed_at + interval '2 days', false, false, 0,
    false, placed_at + interval '1 day'
FROM orders WHERE installation_id = $1 AND id % 2 = 0;
"""
CHECKPOINTS = """
INSERT INTO shipment_checkpoints (installation_id, shipment_id, occurred_at, status, message,
    fingerprint)
SELECT $1, s.id, s.shipped_at + step * interval '1 hour',
    (ARRAY['InfoReceived', 'InTransit'])[step + 1], 'checkpoint ' || step, s.id || ':' || step
FROM shipments AS s CROSS JOIN generate_series(0, 1) AS step WHERE s.installation_id = $1;
"""
MESSAGES = """
INSERT INTO messages (installation_id, idempotency_key, profile_id, channel, marketing, topic,
    template_key, recipient, subject, status, attempts, created_at, sent_at)
SELECT $1, 'bench:' || p.id || ':' || n, p.id, 'EMAIL', true, 'offers', 'win_back', p.email,
    'We miss you', 'SENT', 1, now() - n * interval '1 day', now() - n * interval '1 day'
FROM profiles AS p CROSS JOIN generate_series(1, 2) AS n
WHERE p.installation_id = $1 AND p.id % 2 = 0;
"""
# Orders, the profiles' figures and open carts are made as for the segments bench.
AGGREGATES, CHECKOUTS = segments_bench.AGGREGATES, segments_bench.CHECKOUTS


def step(message: str) -> None:
    print(f"[bench api] {message}", file=sys.stderr, flush=True)


class Signer:
    """Stands in for Saleor: an RSA key, its JWKS, and dashboard tokens it signs."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def token(self) -> str:
        now = int(time.time())
        permissions = ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"]
        claims = {
            "iat": now,
            "exp": now + 3600,
            "iss": SALEOR_API_URL,
            "app": APP_ID,
            "email": "bench@example.com",
            "user_id": "VXNlcjox",
            "user_permissions": permissions,
            "permissions": permissions,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})


async def generate(db_url: str, profiles: int, orders: int, jwks: dict[str, Any]) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        installation_id: int = await conn.fetchval(
            "INSERT INTO installations (saleor_api_url, saleor_domain, app_id, token_encrypted,"
            " jwks, status, installed_at, created_at, updated_at)"
            " VALUES ($1, '127.0.0.1', $2, 'x', $3::jsonb, 'ACTIVE', now(), now(), now())"
            " RETURNING id",
            SALEOR_API_URL,
            APP_ID,
            json.dumps(jwks),
        )
        await conn.execute("SELECT setseed(0.42)")
        for name, sql, args in (
            ("profiles", GENERATE, (profiles,)),
            ("identities", IDENTITIES, ()),
            ("orders", ORDERS, (profiles, orders)),
            ("order lines", LINES, ()),
            ("timeline", TIMELINE, ()),
            ("aggregates", AGGREGATES, ()),
            ("checkouts", CHECKOUTS, ()),
            ("shipments", SHIPMENTS, ()),
            ("checkpoints", CHECKPOINTS, ()),
            ("messages", MESSAGES, ()),
        ):
            step(f"generating {name}")
            await conn.execute(sql, installation_id, *args)
        await conn.execute("ANALYZE")
        return installation_id
    finally:
        await conn.close()


async def fill_segments(installation_id: int) -> None:
    """Built-in segments with their members, so the card's `segments { why }` is real."""
    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.segments.builtin import ensure_builtin_segments
    from plugin.segments.membership import refresh_installation
    from plugin.settings import Settings

    db = Database(Settings())
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)
    await db.dispose()


async def analyze(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def stored_installation(db_url: str, jwks: dict[str, Any]) -> int:
    """A reused database: this run's key replaces the stored JWKS."""
    conn = await asyncpg.connect(db_url)
    try:
        installation_id: int = await conn.fetchval(
            "UPDATE installations SET jwks = $2::jsonb WHERE saleor_api_url = $1 RETURNING id",
            SALEOR_API_URL,
            json.dumps(jwks),
        )
        return installation_id
    finally:
        await conn.close()


async def sample_customers(db_url: str, installation_id: int, n: int) -> list[int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM profiles TABLESAMPLE SYSTEM (5) WHERE installation_id = $1"
            " AND orders_count > 0 LIMIT $2",
            installation_id,
            n * 4,
        )
    finally:
        await conn.close()
    ids = [r["id"] for r in rows]
    random.Random(7).shuffle(ids)
    return ids[:n]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "plugin.app:app", "--host", "127.0.0.1"]
        + ["--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env={**env, "PORT": str(port), "APP_URL": f"http://127.0.0.1:{port}"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the app did not start")


def percentiles(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


async def measure(base: str, signer: Signer, customers: list[int], pages: int) -> dict[str, Any]:
    from plugin.api.ids import to_global_id

    headers = {"authorization-bearer": signer.token(), "saleor-api-url": SALEOR_API_URL}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:

        async def ask(query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": query, "variables": variables})
            elapsed = time.perf_counter() - started
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise RuntimeError(f"the API answered {response.status_code}: {body}")
            return elapsed, body

        for pk in customers[:20]:  # warm up connections, caches and the JWKS
            await ask(TRIVIAL, {})
            await ask(CARD, {"id": to_global_id("Customer", pk)})
        trivial = [(await ask(TRIVIAL, {}))[0] for _ in range(len(customers))]
        step(f"customer card x {len(customers)}")
        cards = [(await ask(CARD, {"id": to_global_id("Customer", pk)}))[0] for pk in customers]
        step(f"customer list pages x {pages}")
        listing: list[float] = []
        while len(listing) < pages:
            sort = SORTS[len(listing) % len(SORTS)]
            after = None
            for _ in range(3):  # the first page, then two more by cursor
                elapsed, body = await ask(PAGE, {"sort": sort, "after": after})
                listing.append(elapsed)
                after = body["data"]["customers"]["pageInfo"]["endCursor"]
    return {
        "trivial": percentiles(trivial),
        "card": percentiles(cards),
        "page": percentiles(listing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000, help="customers to generate")
    parser.add_argument("--orders-per-profile", type=float, default=3.0, help="average orders")
    parser.add_argument("--reuse", metavar="DATABASE", help="measure an existing bench database")
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument("--samples", type=int, default=300, help="cards (and pages) measured")
    args = parser.parse_args()
    orders = int(args.profiles * args.orders_per_profile)
    database = args.reuse or f"crm_bench_api_{uuid.uuid4().hex[:8]}"
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    figures: dict[str, Any] = {"bench": "api", "database": database}
    signer = Signer()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_SALEOR_URLS": "http://127.0.0.1:*",
    }
    env.pop("REDIS_URL", None)
    os.environ.update(env)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    if not args.reuse:
        asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    process = None
    try:
        subprocess.run(
            [sys.executable, "-m", "plugin.cli", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if args.reuse:
            installation_id = asyncio.run(stored_installation(db_url, signer.jwks))
        else:
            step(f"generating {args.profiles:,} customers and {orders:,} orders")
            started = time.perf_counter()
            installation_id = asyncio.run(generate(db_url, args.profiles, orders, signer.jwks))
            step("built-in segments and their members")
            asyncio.run(fill_segments(installation_id))
            asyncio.run(analyze(db_url))  # fresh statistics, as autovacuum would leave them
            figures["generate_seconds"] = round(time.perf_counter() - started, 1)
        customers = asyncio.run(sample_customers(db_url, installation_id, args.samples))
        figures["profiles"] = args.profiles if not args.reuse else None
        step("starting the app")
        process, base = serve(env)
        measured = asyncio.run(measure(base, signer, customers, args.samples))
        trivial = measured["trivial"]["p95_ms"]
        figures.update(
            trivial_p50_ms=measured["trivial"]["p50_ms"],
            trivial_p95_ms=trivial,
            card_p50_ms=measured["card"]["p50_ms"],
            card_p95_ms=measured["card"]["p95_ms"],
            page_p50_ms=measured["page"]["p50_ms"],
            page_p95_ms=measured["page"]["p95_ms"],
            card_ratio_to_trivial=round(measured["card"]["p95_ms"] / trivial, 2),
            page_ratio_to_trivial=round(measured["page"]["p95_ms"] / trivial, 2),
            samples=len(customers),
        )
        figures["goal_card_met"] = figures["card_p95_ms"] <= 20
        figures["goal_page_met"] = figures["page_p95_ms"] <= 100
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        if not args.reuse and not args.keep:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
