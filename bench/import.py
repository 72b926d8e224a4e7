"""Import benchmark: a shop's history read from a Saleor simulator and folded into
PostgreSQL by the real importer (`plugin.importer`, the code `import.run` runs).

Measured in one run against the same simulator process (bench/saleor_lists.py):
- baseline: reading every page of orders from the simulator without folding (HTTP, JSON):
  the ceiling the simulator and the transport put on any importer;
- the import: customers, then checkouts, then orders, read ahead while earlier pages are
  folded set-based (multi-row statements, the webhook folds' rules), the pages read by
  then folded together in one transaction; orders folded per second is the headline;
- the customers' figures, recomputed once each after the last page (counted in the
  orders' time);
- the finishing step (RFM, scores, every segment and the analytics rollups, whole shop).

Prints one JSON line: {"bench": "import", ...}. Goal (issue #8): ≥ 5,000 orders/s at
200,000 orders (`--orders 200000`, the default). `--quick` runs 2,000 orders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
GOAL = 5000.0


def step(message: str) -> None:
    """Progress on stderr; stdout carries only the final JSON line."""
    print(f"[bench import] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_saleor(port: int, orders: int, customers: int, checkouts: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "saleor_lists.py")]
        + [str(n) for n in (port, orders, customers, checkouts)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the Saleor simulator did not start")
    return process


async def fetch_only(api_url: str, page_size: int) -> tuple[int, float]:
    """Every page of orders, read and decoded, nothing folded: (orders, seconds)."""
    from plugin.importer.source import RESOURCES, SaleorPages

    async with httpx.AsyncClient(timeout=60) as http:
        pages = SaleorPages(http, api_url, "bench-token", requests_per_second=0)
        started, cursor, seen = time.perf_counter(), None, 0
        while True:
            page = await pages.page(RESOURCES["orders"], cursor, page_size)
            seen += len(page.nodes)
            if not page.has_next:
                return seen, time.perf_counter() - started
            cursor = page.end_cursor


async def run(args: argparse.Namespace) -> dict[str, Any]:
    database = f"crm_bench_import_{uuid.uuid4().hex[:8]}"
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    os.environ.update(DATABASE_URL=db_url, SECRET_KEY="bench-secret", LOG_LEVEL="WARNING")
    os.environ.pop("REDIS_URL", None)

    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.db.migrate import upgrade
    from plugin.importer.progress import Progress
    from plugin.importer.service import Importer, start_import
    from plugin.kit.after_commit import unit_of_work
    from plugin.kit.crypto import SecretBox
    from plugin.saleor.models import Installation
    from plugin.settings import Settings

    port = free_port()
    step(f"simulator: {args.orders} orders, {args.customers} customers, {args.checkouts} carts")
    saleor = start_saleor(port, args.orders, args.customers, args.checkouts)
    api_url = f"http://127.0.0.1:{port}/graphql/"
    await admin(f'CREATE DATABASE "{database}"')
    try:
        await asyncio.to_thread(upgrade, db_url)  # Alembic runs its own event loop
        settings = Settings(import_requests_per_second=0, import_page_size=args.page_size)
        db = Database(settings)
        box = SecretBox(settings.secret_key.get_secret_value())

        step("baseline: reading every page of orders without folding")
        fetched, fetch_seconds = await fetch_only(api_url, args.page_size)

        async with unit_of_work(db) as session:
            installation = Installation(
                saleor_api_url=api_url,
                app_id="QXBwOjQy",
                token_encrypted=box.encrypt("bench-token"),
                jwks={"keys": []},
                installed_at=utcnow(),
            )
            session.add(installation)
            await session.flush()
            run_id = (await start_import(session, installation.id, requested_by="bench")).id

        marks: dict[str, float] = {}

        def on_progress(progress: Progress) -> None:
            now = time.perf_counter()
            for resource in progress.resources:
                if resource.processed and resource.name not in marks:
                    marks[resource.name] = now
                if resource.finished:
                    marks.setdefault(resource.name + ":end", now)
            if progress.percent is not None and int(progress.percent) % 10 == 0:
                step(f"{progress.percent:.0f}% ({progress.processed}/{progress.total})")

        step("import")
        load_before = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        async with httpx.AsyncClient(timeout=60) as http:
            importer = Importer(db, http, box, settings, on_progress=on_progress)
            status = await importer.run(run_id)
        # The customers' figures are recomputed once each after the last page: that time
        # counts as the orders' (it is mostly theirs), so orders/s is not flattered.
        figures_seconds = importer.figures_seconds
        total_seconds = time.perf_counter() - started
        app_cpu_seconds = time.process_time() - cpu_started  # the importer's own process
        await db.dispose()
        if status.value != "done":
            raise RuntimeError(f"the import ended {status.value}")
        # Orders: from the end of the checkouts to the last orders page.
        orders_from = marks.get("checkouts:end", marks.get("customers:end", started))
        orders_seconds = marks["orders:end"] - orders_from + figures_seconds
        orders_rate = args.orders / orders_seconds
        fetch_rate = fetched / fetch_seconds
        customers_seconds = marks.get("customers:end", started) - started
        return {
            "bench": "import",
            "database": "postgresql",
            "orders": args.orders,
            "customers": args.customers,
            "checkouts": args.checkouts,
            "page_size": args.page_size,
            "fetch_only_orders_per_second": round(fetch_rate, 1),
            "orders_folded_per_second": round(orders_rate, 1),
            "ratio_to_fetch_only": round(orders_rate / fetch_rate, 3),
            "customers_folded_per_second": round(args.customers / customers_seconds, 1)
            if args.customers
            else None,
            "figures_seconds": round(figures_seconds, 2),
            "finish_seconds": round(
                total_seconds - (marks["orders:end"] - started) - figures_seconds, 2
            ),
            "total_seconds": round(total_seconds, 2),
            "app_cpu_seconds": round(app_cpu_seconds, 2),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "goal_orders_per_second": GOAL,
            "goal_met": orders_rate >= GOAL,
        }
    finally:
        saleor.terminate()
        saleor.wait(10)
        if args.keep:
            step(f"kept database {database}")
        else:
            await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--customers", type=int, help="default: a quarter of the orders")
    parser.add_argument("--checkouts", type=int, help="default: a twentieth of the orders")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database (to inspect)")
    parser.add_argument("--quick", action="store_true", help="a small run: 2,000 orders")
    args = parser.parse_args()
    if args.quick:
        args.orders = 2000
    args.customers = args.orders // 4 if args.customers is None else args.customers
    args.checkouts = args.orders // 20 if args.checkouts is None else args.checkouts
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
