"""Abuse benchmark: does one hostile request freeze the app? (issue 16)

Serves the real app with uvicorn on loopback (PostgreSQL, one installed shop played by
the Saleor simulator) and measures, in one run:
- `/healthz` latency at rest (p50/p99);
- the same while the worst requests of issue 16 are sent, a few at a time, for a bounded
  number of rounds: GraphQL fragment chains up to n=40, alias, depth, field-merge, token
  and directive bombs, 200 MB bodies streamed to `/graphql` and `/api/register` (with
  and without a declared length), template loops and huge strings through
  `messageTemplatePreview`;
- for each kind of abusive request, the longest time to its answer, and whether every
  answer was an error (4xx, or a GraphQL error without data);
- the app process's resident memory (RSS) before and at its peak during the attack.

Each phase (GraphQL, bodies, templates) runs at least BENCH_ABUSE_ROUNDS rounds and at
least BENCH_ABUSE_SECONDS. Goals: healthz p99 under attack ≤ 3× at rest and ≤ 250 ms,
every abusive request answered with an error within 1 s, RSS growth ≤ 50 MB. One line:
{"bench": "abuse", ...}. Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import get_introspection_query

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhooks import (  # noqa: E402
    BIN,
    LOG_DIR,
    PG_URL,
    admin,
    free_port,
    serve,
    stop_process,
)
from tests.security.hostile_documents import deep_chain, fragment_chain  # noqa: E402
from tests.simulator import SaleorSimulator  # noqa: E402

INTROSPECTION = get_introspection_query(descriptions=True)

ROUNDS = int(os.environ.get("BENCH_ABUSE_ROUNDS", "3"))
# More rounds while a phase is shorter than this (enough /healthz samples), at most 50.
PHASE_SECONDS = float(os.environ.get("BENCH_ABUSE_SECONDS", "15"))
MAX_ROUNDS = 50
AT_ONCE = int(os.environ.get("BENCH_ABUSE_CONCURRENCY", "4"))
REST_SAMPLES = int(os.environ.get("BENCH_HEALTHZ_SAMPLES", "300"))
HUGE_BODY_MB = int(os.environ.get("BENCH_HUGE_BODY_MB", "200"))
PHASES = os.environ.get("BENCH_ABUSE_PHASES", "graphql,bodies,templates").split(",")
# A request not answered by then counts as not answered (and the goal as missed).
ANSWER_TIMEOUT = 30.0
PROBE_INTERVAL = 0.02


def step(message: str) -> None:
    """Progress on stderr; stdout carries only the final JSON line."""
    print(f"[bench abuse] {message}", file=sys.stderr, flush=True)


def documents() -> dict[str, str]:
    """The hostile GraphQL documents, by name."""
    found = {f"fragment_chain_{n}": fragment_chain(n) for n in (20, 30, 40)}
    found["alias_chain_40"] = fragment_chain(40, leaf="a: __typename")
    found["alias_flat_1000"] = "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"
    found["depth_chain_30"] = deep_chain(30)
    found["depth_nested_500"] = "{ " + "viewer { " * 500 + "email" + " }" * 501
    found["field_merge_240"] = "{ " + "viewer { email } " * 240 + "}"
    found["tokens_100k"] = "{ viewer { " + "email " * 100_000 + "} }"
    found["directives_1000"] = "{ viewer " + "@skip(if: false) " * 1000 + "{ email } }"
    cycle = "fields { type { " * 3 + "name" + " } }" * 3
    found["introspection_cycle"] = "{ __schema { types { " + cycle + " } } }"
    return found


TEMPLATES = {
    "template_nested_loops": (
        "{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}"
    ),
    "template_huge_string": "{{ 'x' * 10**8 }}",
}
PREVIEW = "query($c: JSON) { messageTemplatePreview(contents: $c) { subject text } }"


@dataclass
class Answer:
    seconds: float
    status: int | str | None  # None: no answer; "closed": refused by closing mid-body
    error: bool


@dataclass
class Figures:
    answers: dict[str, list[Answer]] = field(default_factory=dict)

    def add(self, name: str, answer: Answer) -> None:
        self.answers.setdefault(name, []).append(answer)


def is_error(response: httpx.Response) -> bool:
    if response.status_code >= 400:
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("errors")) and body.get("data") is None


async def timed(send: Callable[[], Awaitable[httpx.Response]]) -> Answer:
    start = time.perf_counter()
    try:
        response = await asyncio.wait_for(send(), ANSWER_TIMEOUT)
    except (httpx.HTTPError, TimeoutError):
        return Answer(time.perf_counter() - start, None, False)
    return Answer(time.perf_counter() - start, response.status_code, is_error(response))


async def upload(
    base_url: str, path: str, megabytes: int, *, declared: bool, headers: dict[str, str]
) -> Answer:
    """Streams a body of `megabytes` MB of `[` (deep JSON, were it ever parsed) and times
    the answer's status line, which a server may send before the body ends (413): an
    HTTP client library would still be writing, and fail when the server closes."""
    host, port = base_url.removeprefix("http://").split(":")
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    size = megabytes * 1024 * 1024
    framing = f"content-length: {size}" if declared else "transfer-encoding: chunked"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"{head}{framing}\r\nconnection: close\r\n\r\n".encode()
    )
    block = b"[" * (1024 * 1024)
    chunk = (b"%x\r\n" % len(block)) + block + b"\r\n"

    async def send() -> bool:
        """True once the whole body is sent; False when the server stopped taking it."""
        try:
            for _ in range(megabytes):
                writer.write(block if declared else chunk)
                await writer.drain()
            if not declared:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except OSError:
            return False
        return True

    sending = asyncio.create_task(send())
    status: int | str | None = None
    try:
        status_line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
        parts = status_line.split()
        if len(parts) > 1 and parts[1].isdigit():
            status = int(parts[1])
    except (TimeoutError, OSError):
        pass
    seconds = time.perf_counter() - start
    whole_body_sent = sending.done() and not sending.cancelled() and sending.result()
    if status is None and seconds < ANSWER_TIMEOUT and not whole_body_sent:
        # The server closed the connection long before the body was sent (its 413 may
        # be lost to the reset a close with unread data causes): a refusal too.
        status = "closed"
    sending.cancel()
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, asyncio.CancelledError):
        pass
    refused = status == "closed" or (isinstance(status, int) and status >= 400)
    return Answer(seconds, status, refused)


def huge_uploads(
    base_url: str, register: dict[str, str]
) -> dict[str, Callable[[], Awaitable[Answer]]]:
    mb = HUGE_BODY_MB

    def sent(path: str, declared: bool, headers: dict[str, str]) -> Callable[[], Awaitable[Answer]]:
        return lambda: upload(base_url, path, mb, declared=declared, headers=headers)

    return {
        f"graphql_body_{mb}mb_chunked": sent("/graphql", False, {}),
        f"graphql_body_{mb}mb_declared": sent("/graphql", True, {}),
        f"register_body_{mb}mb_chunked": sent("/api/register", False, register),
        f"register_body_{mb}mb_declared": sent("/api/register", True, register),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _probe(base_url: str, stop: Any, out: Any) -> None:
    latencies = []
    with httpx.Client(base_url=base_url) as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                client.get("/healthz", timeout=ANSWER_TIMEOUT)
                latencies.append(time.perf_counter() - start)
            except httpx.HTTPError:
                latencies.append(ANSWER_TIMEOUT)
            time.sleep(PROBE_INTERVAL)
    out.put(latencies)


class Probe:
    """`/healthz` one request at a time from a process of its own (the attack's client
    work must not delay it), each request's latency."""

    def __init__(self, base_url: str) -> None:
        context = multiprocessing.get_context("fork")
        self.stop, self.out = context.Event(), context.Queue()
        self.process = context.Process(target=_probe, args=(base_url, self.stop, self.out))
        self.process.start()

    def latencies(self) -> list[float]:
        self.stop.set()
        found: list[float] = self.out.get(timeout=ANSWER_TIMEOUT + 10)
        self.process.join(timeout=10)
        return found


async def sample_rss(pid: int, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.05)
    return max(peak, rss_mb(pid))


def percentile(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


async def at_rest(base_url: str, staff: dict[str, str]) -> list[float]:
    """`/healthz` latencies once the app has served ordinary traffic (its first GraphQL
    request and first preview pay one-off costs that are no attack's doing)."""
    legit = {"": {"subject": "Hi {{ customer.first_name }}", "text": "Hello"}}
    async with httpx.AsyncClient(base_url=base_url, timeout=ANSWER_TIMEOUT) as client:
        for _ in range(5):
            await client.get("/healthz")
            await client.post("/graphql", json={"query": INTROSPECTION})
            await client.post("/graphql", json={"query": "{ viewer { email } }"}, headers=staff)
            preview = {"query": PREVIEW, "variables": {"c": legit}}
            await client.post("/graphql", json=preview, headers=staff)
    probe = Probe(base_url)
    await asyncio.sleep(REST_SAMPLES * PROBE_INTERVAL * 1.5)
    return probe.latencies()


Phase = Callable[[httpx.AsyncClient], dict[str, Callable[[], Awaitable[Answer]]]]


async def attack(base_url: str, pid: int, requests: Phase) -> dict[str, Any]:
    """ROUNDS rounds of `requests`, AT_ONCE at a time, `/healthz` probed meanwhile."""
    figures = Figures()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=AT_ONCE + 4)
    async with (
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=ANSWER_TIMEOUT) as client,
    ):
        probe = Probe(base_url)
        sampling = asyncio.create_task(sample_rss(pid, stop))
        gate = asyncio.Semaphore(AT_ONCE)

        async def send(name: str, request: Callable[[], Awaitable[Answer]]) -> None:
            async with gate:
                figures.add(name, await request())

        started = time.perf_counter()
        for round_ in range(MAX_ROUNDS):
            if round_ >= ROUNDS and time.perf_counter() - started >= PHASE_SECONDS:
                break
            if round_ % 10 == 0:
                step(f"  round {round_ + 1}")
            await asyncio.gather(*(send(n, r) for n, r in requests(client).items()))
        stop.set()
        latencies = probe.latencies()
        peak = await sampling
    answers = {
        name: {
            "max_seconds": round(max(a.seconds for a in found), 3),
            "statuses": sorted({str(a.status) for a in found}),
            "all_errors": all(a.error for a in found),
        }
        for name, found in figures.answers.items()
    }
    return {"latencies": latencies, "answers": answers, "rss_peak_mb": peak}


def phases(base_url: str, staff: dict[str, str], register: dict[str, str]) -> dict[str, Phase]:
    def graphql(client: httpx.AsyncClient) -> dict[str, Callable[[], Awaitable[Answer]]]:
        def post(document: str) -> Callable[[], Awaitable[Answer]]:
            return lambda: timed(lambda: client.post("/graphql", json={"query": document}))

        return {name: post(document) for name, document in documents().items()}

    def bodies(client: httpx.AsyncClient) -> dict[str, Callable[[], Awaitable[Answer]]]:
        return huge_uploads(base_url, register)

    def templates(client: httpx.AsyncClient) -> dict[str, Callable[[], Awaitable[Answer]]]:
        def preview(text: str) -> Callable[[], Awaitable[Answer]]:
            body = {"query": PREVIEW, "variables": {"c": {"": {"text": text}}}}
            return lambda: timed(lambda: client.post("/graphql", json=body, headers=staff))

        return {name: preview(text) for name, text in TEMPLATES.items()}

    # Templates last: a render without a budget may hold the process after its timeout.
    return {"graphql": graphql, "bodies": bodies, "templates": templates}


def main() -> None:
    database = f"crm_bench_{uuid.uuid4().hex[:8]}"
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    app: subprocess.Popen[bytes] | None = None
    figures: dict[str, Any] = {"bench": "abuse"}
    saleor = SaleorSimulator()
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_SALEOR_URLS": "http://127.0.0.1:*",
            "APP_URL": base_url,
            "PORT": str(port),
        }
        env.pop("REDIS_URL", None)  # jobs in-process: one process to measure
        subprocess.run(
            [str(BIN / "python"), "-m", "plugin.cli", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        saleor.start()
        app = serve("plugin.app:app", port, env)
        registered = httpx.post(
            f"{base_url}/api/register",
            json={"auth_token": saleor.new_app_token()},
            headers=saleor.register_headers(),
            timeout=30,
        )
        registered.raise_for_status()
        perms = ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS", "MANAGE_APPS"]
        staff = {
            "authorization-bearer": saleor.make_jwt(
                user_permissions=perms, permissions=perms, exp=int(time.time()) + 3600
            ),
            "saleor-api-url": saleor.api_url,
        }

        step(f"/healthz at rest: {REST_SAMPLES} requests")
        rest = asyncio.run(at_rest(base_url, staff))
        rss_start = rss_mb(app.pid)
        latencies: list[float] = []
        answers: dict[str, Any] = {}
        peak = rss_start
        for phase, requests in phases(base_url, staff, saleor.register_headers()).items():
            if phase not in PHASES:
                continue
            step(f"attack, {phase}: {ROUNDS} rounds, {AT_ONCE} at once, /healthz probed")
            attacked = asyncio.run(attack(base_url, app.pid, requests))
            latencies += attacked["latencies"]
            answers.update(attacked["answers"])
            peak = max(peak, attacked["rss_peak_mb"])
            figures[f"healthz_p99_ms_{phase}"] = round(
                percentile(attacked["latencies"], 99) * 1000, 2
            )
        rss_end = rss_mb(app.pid)

        rest_p99 = percentile(rest, 99)
        attack_p99 = percentile(latencies, 99)
        slowest = max(a["max_seconds"] for a in answers.values())
        growth = max(peak, rss_end) - rss_start
        figures.update(
            healthz_rest_p50_ms=round(percentile(rest, 50) * 1000, 2),
            healthz_rest_p99_ms=round(rest_p99 * 1000, 2),
            healthz_attack_p50_ms=round(percentile(latencies, 50) * 1000, 2),
            healthz_attack_p99_ms=round(attack_p99 * 1000, 2),
            healthz_attack_max_ms=round(max(latencies) * 1000, 2),
            healthz_attack_samples=len(latencies),
            healthz_p99_ratio=round(attack_p99 / rest_p99, 2) if rest_p99 else None,
            abusive_max_seconds={k: v["max_seconds"] for k, v in answers.items()},
            abusive_statuses={k: v["statuses"] for k, v in answers.items()},
            abusive_not_errors=sorted(k for k, v in answers.items() if not v["all_errors"]),
            abusive_slowest_seconds=slowest,
            rss_start_mb=round(rss_start, 1),
            rss_peak_mb=round(peak, 1),
            rss_end_mb=round(rss_end, 1),
            rss_growth_mb=round(growth, 1),
            goal_healthz_met=attack_p99 <= 3 * rest_p99 and attack_p99 <= 0.250,
            goal_errors_within_1s_met=slowest <= 1.0
            and all(v["all_errors"] for v in answers.values()),
            goal_rss_met=growth <= 50,
        )
    finally:
        saleor.stop()
        if app is not None:
            stop_process(app)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    step(f"server logs in {LOG_DIR}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
