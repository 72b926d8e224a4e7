"""Issue 16 §6: metric labels come from closed sets only.

`Saleor-Event` is an unauthenticated header: were it a label, every made-up value would
be a new time series (3,000 requests made 6,018 `/metrics` lines). Every label of every
`crm_*` metric is checked against its closed set after a mix of good and bad requests.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from plugin.inbox.models import InboxStatus
from plugin.saleor.events import webhook_specs
from tests.conftest import RunningApp
from tests.simulator import FakeShop

KNOWN_EVENTS = {event for spec in webhook_specs() for event in spec.events}
REASONS = {
    "BAD_REQUEST",
    "BODY_TOO_LARGE",
    "INVALID_JSON",
    "INVALID_PAYLOAD",
    "WRONG_EVENT",
    "MISSING_SALEOR_API_URL",
    "MISSING_SIGNATURE",
    "NOT_REGISTERED",
    "SIGNATURE_VERIFICATION_FAILED",
    "KEYS_UNAVAILABLE",
    "UNAVAILABLE",
}
CLOSED_SETS: dict[str, set[str]] = {
    "event": KNOWN_EVENTS | {"other"},
    "reason": REASONS | {"other"},
    "duplicate": {"true", "false"},
    "permanent": {"true", "false"},
    "status": {status.value for status in InboxStatus},
}


async def _rejected(app: RunningApp) -> list[dict[str, str]]:
    return [labels for name, labels in await _series(app) if name == "crm_webhooks_rejected_total"]


async def _series(app: RunningApp) -> list[tuple[str, dict[str, str]]]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{app.base_url}/metrics")).text
    return [
        (sample.name, dict(sample.labels))
        for family in text_string_to_metric_families(text)
        if family.name.startswith("crm_")
        for sample in family.samples
    ]


async def test_made_up_event_headers_mint_no_series(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    before = await _rejected(app_server)
    event = FakeShop().create_order(email="m@example.com", lines=[("Mug", "M", "K", 1, 2.0)])[0]
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        for _ in range(60):
            made_up = "order_" + secrets.token_hex(8)
            headers = {**saleor.webhook_headers("order_created", event.body)}
            headers["Saleor-Event"] = headers["X-Saleor-Event"] = made_up
            response = await client.post("/api/webhooks/order", content=event.body, headers=headers)
            assert response.status_code == 400
        # a known event sent without a signature: a known label, a known reason
        unsigned = {"Saleor-Event": "order_created", "Saleor-Api-Url": saleor.api_url}
        assert (
            await client.post("/api/webhooks/order", content=b"{}", headers=unsigned)
        ).status_code == 401
    assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    after = await _rejected(app_server)
    assert {"event": "other", "reason": "WRONG_EVENT"} in after
    assert {"event": "order_created", "reason": "MISSING_SIGNATURE"} in after
    # sixty made-up events, two kinds of refusal: at most two new series
    assert len(after) - len(before) <= 2, [s for s in after if s not in before]


async def test_every_label_of_every_metric_is_from_a_closed_set(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        for event_header in (
            "ORDER_CREATED",
            "x" * 64,
            "order_created; drop",
            "",
            "customer_created",
        ):
            await client.post(
                "/api/webhooks/order",
                content=b"{}",
                headers={"Saleor-Event": event_header, "Saleor-Api-Url": saleor.api_url},
            )
    for name, labels in await _series(app_server):
        for label, value in labels.items():
            if label in ("le", "quantile"):  # histogram buckets: fixed by the code
                continue
            assert label in CLOSED_SETS, (name, label)
            assert value in CLOSED_SETS[label], (name, label, value)
