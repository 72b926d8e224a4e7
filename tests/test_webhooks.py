"""Webhooks over HTTP as Saleor sends them: verified, stored before the answer, folded.

Negative cases each get a clear 4xx and leave no trace in the inbox.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import func, select

from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.profiles.models import Profile
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop


async def _inbox_count(db: Database, installation_id: int) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(InboxEvent.installation_id == installation_id)
        )
    return int(count or 0)


async def _post(
    app: RunningApp, family: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{app.base_url}/api/webhooks/{family}", content=body, headers=headers
        )


def _order_event(shop: FakeShop) -> Any:
    return shop.create_order(email="Neg@Example.com", lines=[("Mug", "MUG-1", "Kitchen", 1, 12.5)])[
        0
    ]


async def test_signed_webhook_is_stored_then_folded(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    event = _order_event(FakeShop())
    response = await saleor.adeliver(app_server.base_url, event)
    assert response.status_code == 200
    assert response.json() == {"success": True, "duplicate": False}

    async def folded() -> InboxEvent | None:
        async with db.session() as session:
            row = await session.scalar(
                select(InboxEvent).where(InboxEvent.installation_id == installation_id)
            )
        return row if row is not None and row.status is InboxStatus.DONE else None

    row = await eventually(folded)
    assert row.event_type == "order_created"
    assert row.body.encode() == event.body  # the raw bytes, as signed
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(Profile.installation_id == installation_id)
        )
    assert profile is not None
    assert profile.email == "neg@example.com"
    assert profile.orders_count == 1


async def test_redelivery_answers_200_and_changes_nothing(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    event = _order_event(FakeShop())
    first = await saleor.adeliver(app_server.base_url, event)
    second = await saleor.adeliver(app_server.base_url, event)
    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    assert await _inbox_count(db, installation_id) == 1


async def test_rejections_leave_no_trace(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int, settings: Any
) -> None:
    from tests.simulator import SaleorSimulator

    event = _order_event(FakeShop())
    good = saleor.webhook_headers("order_created", event.body)
    tampered_body = event.body.replace(b"Mug", b"Gum")
    with SaleorSimulator() as stranger:  # another Saleor, another key
        foreign = stranger.webhook_headers("order_created", event.body)
        forged = {**good, "Saleor-Signature": foreign["Saleor-Signature"]}
    unsigned = {k: v for k, v in good.items() if "signature" not in k.lower()}
    unknown_shop = {**good, "Saleor-Api-Url": "http://127.0.0.1:9/graphql/"}
    wrong_event = {**good, "Saleor-Event": "order_updated", "X-Saleor-Event": "order_updated"}
    not_json = b"{not json"
    big = b'{"pad": "' + b"x" * (settings.max_webhook_body_bytes + 10) + b'"}'

    cases: list[tuple[str, str, bytes, dict[str, str], int]] = [
        ("no signature", "order", event.body, unsigned, 401),
        ("signed by another key", "order", event.body, forged, 401),
        ("tampered body", "order", tampered_body, good, 401),
        ("unknown Saleor", "order", event.body, unknown_shop, 401),
        ("header names another event", "order", event.body, wrong_event, 400),
        ("event of another family", "customer", event.body, good, 400),
        (
            "malformed JSON",
            "order",
            not_json,
            saleor.webhook_headers("order_created", not_json),
            400,
        ),
        ("oversized body", "order", big, saleor.webhook_headers("order_created", b"{}"), 413),
        ("garbage signature", "order", event.body, {**good, "Saleor-Signature": "a.b"}, 401),
    ]
    for name, family, body, headers, status in cases:
        response = await _post(app_server, family, body, headers)
        assert response.status_code == status, (name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"]
        assert error["message"], name
    assert await _inbox_count(db, installation_id) == 0


async def test_payload_typename_must_match_header(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    event = _order_event(FakeShop())
    payload = json.loads(event.body)
    payload["__typename"] = "OrderCancelled"
    body = json.dumps(payload).encode()
    response = await _post(app_server, "order", body, saleor.webhook_headers("order_created", body))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WRONG_EVENT"
    assert await _inbox_count(db, installation_id) == 0


async def test_rotated_key_is_fetched_once_and_kept(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    saleor.rotate_key()
    fetches = saleor.jwks_fetches
    shop = FakeShop()
    first = await saleor.adeliver(app_server.base_url, _order_event(shop))
    second = await saleor.adeliver(app_server.base_url, _order_event(shop))
    assert first.status_code == second.status_code == 200
    assert saleor.jwks_fetches == fetches + 1  # refetched once, then served from the cache
    assert await _inbox_count(db, installation_id) == 2


async def test_uninstall_marks_installation_removed(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    from plugin.saleor.models import Installation, InstallationStatus

    shop = FakeShop(app_id=saleor.app_id)
    response = await saleor.adeliver(app_server.base_url, shop.delete_app()[0])
    assert response.status_code == 200
    # At once, not after the fold: the very next webhook is refused.
    later = await saleor.adeliver(app_server.base_url, _order_event(shop))
    assert later.status_code == 401
    assert later.json()["error"]["code"] == "NOT_REGISTERED"
    async with db.session() as session:
        installation = await session.get(Installation, installation_id)
    assert installation is not None
    assert installation.status is InstallationStatus.REMOVED


async def test_app_deleted_for_an_older_app_id_is_ignored(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    """A late APP_DELETED of a previous install must not uninstall the current one."""
    shop = FakeShop(app_id="QXBwOjE=")  # App:1, not the simulator's current app
    response = await saleor.adeliver(app_server.base_url, shop.delete_app()[0])
    assert response.status_code == 200
    still = await saleor.adeliver(app_server.base_url, _order_event(shop))
    assert still.status_code == 200


async def test_database_down_answers_503_so_saleor_retries(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    installation_id: int,
    monkeypatch: Any,
) -> None:
    from sqlalchemy.exc import OperationalError

    from plugin.inbox import service

    async def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(service, "store_now", database_down)
    response = await saleor.adeliver(app_server.base_url, _order_event(FakeShop()))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    monkeypatch.undo()
    assert await _inbox_count(db, installation_id) == 0
    retried = await saleor.adeliver(app_server.base_url, _order_event(FakeShop()))
    assert retried.status_code == 200  # Saleor's redelivery lands once the database is back
