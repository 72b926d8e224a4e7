"""Webhook ingestion benchmark: signed ORDER_CREATED webhooks against the app on PostgreSQL.

Measured in one run, with the same load generator:
- baseline: a bare Starlette endpoint (bench/baseline_app.py) under one uvicorn worker;
- the app under one uvicorn worker (verify JWS, dedup, store in the inbox, answer), with
  Redis as the broker and folding left to a separate Dramatiq worker;
- latency at a steady 100 webhooks/s, and receive→folded latency with the worker running.

Prints one JSON line: {"bench": "webhooks", ...}. Goal (issue #2): ≥ 500 webhooks/s for
one uvicorn worker, p99 ≤ 50 ms at 100/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from tests.simulator import FakeShop, SaleorSimulator  # noqa: E402

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
MAX_RATE_REQUESTS = int(os.environ.get("BENCH_REQUESTS", "6000"))
STEADY_RATE = 100.0
STEADY_SECONDS = int(os.environ.get("BENCH_STEADY_SECONDS", "15"))
BIN = Path(sys.executable).parent


def step(message: str) -> None:
    """Progress on stderr; stdout carries only the final JSON line."""
    print(f"[bench webhooks] {message}", file=sys.stderr, flush=True)


LOG_DIR = Path(tempfile.mkdtemp(prefix="crm-bench-"))


def log_file(name: str) -> IO[bytes]:
    return (LOG_DIR / f"{name.replace(':', '_')}.log").open("ab")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server.
        stderr=log_file(app),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start; see {LOG_DIR}")


CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "2000"))


def order_bodies(template: bytes, count: int) -> list[bytes]:
    """Distinct ORDER_CREATED bodies made from one realistic payload: a fresh order id and
    one of CUSTOMERS buyers, so profiles accumulate several orders as in a real shop."""
    payload = json.loads(template)
    original_id, original_email = payload["order"]["id"], payload["order"]["userEmail"]
    text = template.decode()
    bodies = []
    for index in range(count):
        body = text.replace(original_id, f"order-{uuid.uuid4().hex}")
        body = body.replace(original_email, f"buyer{index % CUSTOMERS}@example.com")
        bodies.append(body.encode())
    return bodies


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fold_stats(db_url: str, steady_from_id: int = 0) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    try:
        latency = "extract(epoch FROM folded_at - received_at)"
        steady = "status = 'DONE' AND id > $1"
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'DONE') AS done, count(*) AS total,"
            f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {latency}) FILTER (WHERE {steady}) p50,"
            f" percentile_cont(0.99) WITHIN GROUP (ORDER BY {latency}) FILTER (WHERE {steady}) p99"
            " FROM inbox_events",
            steady_from_id,
        )
        return dict(row)
    finally:
        await conn.close()


def main() -> None:
    database = f"crm_bench_{uuid.uuid4().hex[:8]}"
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    processes: list[subprocess.Popen[bytes]] = []
    figures: dict[str, Any] = {"bench": "webhooks"}
    try:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL,
            "DRAMATIQ_NAMESPACE": f"crm-bench-{database}",
            "RUN_WORKER_IN_PROCESS": "false",
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_SALEOR_URLS": "http://127.0.0.1:*",
        }
        subprocess.run(
            [str(BIN / "python"), "-m", "plugin.cli", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

        saleor = SaleorSimulator()
        saleor.start()
        shop = FakeShop()
        order_event = shop.create_order(
            email="bench@example.com",
            lines=[
                ("Blue hoodie", "HOOD-BLUE-M", "Apparel", 2, 39.0),
                ("Sticker pack", "STICK-1", "Accessories", 1, 5.0),
            ],
        )[0]
        bodies = order_bodies(
            order_event.body, MAX_RATE_REQUESTS + int(STEADY_RATE * STEADY_SECONDS)
        )
        t0 = time.perf_counter()
        headers = [saleor.webhook_headers("order_created", body) for body in bodies]
        figures["signing_seconds"] = round(time.perf_counter() - t0, 2)

        # Baseline first, on its own port, with the same requests.
        base_port = free_port()
        baseline = serve("bench.baseline_app:app", base_port, env)
        processes.append(baseline)
        url = f"http://127.0.0.1:{base_port}/api/webhooks/order"
        requests = [loadgen.build_request(url, b, h) for b, h in zip(bodies, headers, strict=True)]
        step(f"baseline: {MAX_RATE_REQUESTS} requests")
        base = asyncio.run(loadgen.run(url, requests[:MAX_RATE_REQUESTS], concurrency=16))
        baseline.terminate()
        baseline.wait()

        app_port = free_port()
        app_env = {**env, "APP_URL": f"http://127.0.0.1:{app_port}", "PORT": str(app_port)}
        app = serve("plugin.app:app", app_port, app_env)
        processes.append(app)
        token = saleor.new_app_token()
        registered = httpx.post(
            f"http://127.0.0.1:{app_port}/api/register",
            json={"auth_token": token},
            headers=saleor.register_headers(),
        )
        registered.raise_for_status()
        url = f"http://127.0.0.1:{app_port}/api/webhooks/order"
        requests = [loadgen.build_request(url, b, h) for b, h in zip(bodies, headers, strict=True)]
        step(f"app: {MAX_RATE_REQUESTS} requests (store only, no worker)")
        burst = asyncio.run(loadgen.run(url, requests[:MAX_RATE_REQUESTS], concurrency=16))

        worker = subprocess.Popen(
            [str(BIN / "dramatiq"), "jobs.worker", "--processes", "1", "--threads", "4"],
            cwd=ROOT,
            env=app_env,
            stdout=subprocess.DEVNULL,
            stderr=log_file("worker"),
        )
        processes.append(worker)
        step("worker draining the backlog")
        drain_start = time.perf_counter()
        while True:
            stats = asyncio.run(fold_stats(db_url))
            if stats["done"] >= MAX_RATE_REQUESTS or time.perf_counter() - drain_start > 300:
                break
            time.sleep(0.5)
        drain_seconds = time.perf_counter() - drain_start

        step(f"steady {STEADY_RATE:.0f}/s for {STEADY_SECONDS} s with the worker running")
        steady = asyncio.run(
            loadgen.run(url, requests[MAX_RATE_REQUESTS:], concurrency=16, rate=STEADY_RATE)
        )
        time.sleep(3)
        folded = asyncio.run(fold_stats(db_url, steady_from_id=MAX_RATE_REQUESTS))
        saleor.stop()

        ok = burst.statuses.get(200, 0)
        figures.update(
            baseline_rps=round(base.throughput, 1),
            app_rps=round(burst.throughput, 1),
            ratio_to_baseline=round(burst.throughput / base.throughput, 3),
            app_ok=ok,
            app_errors={str(k): v for k, v in burst.statuses.items() if k != 200},
            steady_rate=STEADY_RATE,
            steady_p50_ms=round(steady.percentile(50) * 1000, 2),
            steady_p99_ms=round(steady.percentile(99) * 1000, 2),
            baseline_p99_ms_under_load=round(base.percentile(99) * 1000, 2),
            folds_per_second_backlog=round(MAX_RATE_REQUESTS / drain_seconds, 1),
            fold_latency_p50_ms_at_100rps=round(float(folded["p50"] or 0) * 1000, 1),
            fold_latency_p99_ms_at_100rps=round(float(folded["p99"] or 0) * 1000, 1),
            goal_rps_met=burst.throughput >= 500,
            goal_p99_met=steady.percentile(99) <= 0.050,
        )
    finally:
        for process in processes:
            stop_process(process)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    step(f"server logs in {LOG_DIR}")
    print(json.dumps(figures))


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the bench started, killing it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
