"""Operations: health, metrics, and a broker outage that delays folding but loses nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit import after_commit
from plugin.kit.after_commit import Job
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        label_part = series[len(name) :].strip("{}")
        if ",".join(sorted(label_part.split(","))) == wanted:
            return float(value)
    return 0.0


async def test_healthz_reports_database_and_broker(app_server: RunningApp) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{app_server.base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


async def test_metrics_count_received_rejected_and_folded(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{app_server.base_url}/metrics")).text
        event = FakeShop().create_customer("metrics@example.com")[0]
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
        unsigned = await client.post(
            f"{app_server.base_url}/api/webhooks/customer",
            content=event.body,
            headers={
                "Saleor-Event": "customer_created",
                "Saleor-Api-Url": saleor.api_url,
                "Content-Type": "application/json",
            },
        )
        assert unsigned.status_code == 401

        async def folded() -> bool:
            text = (await client.get(f"{app_server.base_url}/metrics")).text
            return _metric(
                text, "crm_fold_latency_seconds_count", event="customer_created"
            ) > _metric(before, "crm_fold_latency_seconds_count", event="customer_created")

        await eventually(folded)
        after = (await client.get(f"{app_server.base_url}/metrics")).text
    received = {"event": "customer_created", "duplicate": "false"}
    assert _metric(after, "crm_webhooks_received_total", **received) == (
        _metric(before, "crm_webhooks_received_total", **received) + 1
    )
    rejected = {"event": "customer_created", "reason": "MISSING_SIGNATURE"}
    assert _metric(after, "crm_webhooks_rejected_total", **rejected) == (
        _metric(before, "crm_webhooks_rejected_total", **rejected) + 1
    )
    assert "crm_inbox_backlog" in after


async def test_broker_outage_delays_folding_but_loses_nothing(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    installation_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Enqueueing after commit fails (Redis down): Saleor still gets its 200, the row
    waits in the inbox, and the periodic sweeper folds it once jobs flow again."""
    attempts: list[Job] = []

    def broker_down(job: Job) -> None:
        attempts.append(job)
        raise ConnectionError("Redis is unreachable")

    monkeypatch.setattr(after_commit, "_dispatcher", broker_down)
    event = FakeShop().create_customer("outage@example.com")[0]
    response = await saleor.adeliver(app_server.base_url, event)
    assert response.status_code == 200
    assert [job.actor for job in attempts] == ["inbox.fold"]

    async def status() -> InboxStatus | None:
        async with db.session() as session:
            row = await session.scalar(
                select(InboxEvent).where(InboxEvent.installation_id == installation_id)
            )
        return row.status if row is not None else None

    assert await status() is InboxStatus.PENDING  # stored, not folded, not lost
    await eventually(lambda: _is_done(status))


async def _is_done(status: Any) -> bool:
    return bool(await status() is InboxStatus.DONE)


def test_web_process_without_worker_can_enqueue_folds() -> None:
    """`uvicorn` with a separate `make worker`: the web process declares the actors it sends
    to (found by the benchmark: without this, only the sweeper ever folded)."""
    import os
    import subprocess
    import sys

    code = (
        "from jobs import runtime; runtime.install_dispatcher(); "
        "print(runtime.broker.get_actor('inbox.fold').actor_name)"
    )
    env = {**os.environ, "RUN_WORKER_IN_PROCESS": "false"}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inbox.fold"
