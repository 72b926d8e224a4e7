"""The import over the GraphQL API: the dashboard starts it and polls its progress."""

from __future__ import annotations

from typing import Any

from plugin.db.engine import Database
from tests.api import gql, staff_headers
from tests.conftest import RunningApp, eventually
from tests.importing import shop_with_history

PROGRESS = """query($id: ID) { importRun(id: $id) {
  id status requestedBy percent processed total failed etaSeconds ratePerSecond
  startedAt finishedAt lastError
  resources { name processed total finished }
  failures { resource objectId message occurredAt } } }"""
START = "mutation { importStart { id status requestedBy } }"


async def test_dashboard_starts_and_follows_the_import(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    staff = staff_headers(saleor)

    async def finished() -> dict[str, Any] | None:
        answer = await gql(app_server, PROGRESS, headers=staff)
        run = answer.data["importRun"]
        return run if run and run["status"] == "DONE" else None

    # The install queued the first import (an empty shop: done at once).
    first = await eventually(finished, timeout=60)
    assert first["requestedBy"] == "install"
    assert (first["percent"], first["total"], first["etaSeconds"]) == (100.0, 0, 0.0)

    shop = shop_with_history(customers=2, guest_orders=1)
    broken = next(iter(shop.orders))
    shop.orders[broken]["updatedAt"] = "soon"
    saleor.shop = shop
    started = await gql(app_server, START, headers=staff)
    assert started.codes == []
    run = started.data["importStart"]
    assert run["id"] != first["id"]
    assert run["requestedBy"] == "staff@example.com"

    done = await eventually(finished, timeout=60)
    assert done["id"] == run["id"]
    assert done["percent"] == 100.0
    assert (done["processed"], done["total"], done["failed"]) == (5, 6, 1)
    assert [(r["name"], r["total"], r["finished"]) for r in done["resources"]] == [
        ("customers", 2, True),
        ("checkouts", 1, True),
        ("orders", 3, True),
    ]
    (failure,) = done["failures"]
    assert (failure["resource"], failure["objectId"]) == ("orders", broken)
    assert "soon" in failure["message"]
    by_id = await gql(app_server, PROGRESS, {"id": first["id"]}, headers=staff)
    assert by_id.data["importRun"]["id"] == first["id"]


async def test_permissions(app_server: RunningApp, saleor: Any, installation_id: int) -> None:
    orders_only = staff_headers(saleor, ["MANAGE_ORDERS"])
    assert (await gql(app_server, PROGRESS, headers=orders_only)).codes == ["FORBIDDEN"]
    users_only = staff_headers(saleor, ["MANAGE_USERS"])
    assert (await gql(app_server, START, headers=users_only)).codes == ["FORBIDDEN"]
    missing = await gql(
        app_server, PROGRESS, {"id": "SW1wb3J0UnVuOjk5OTk5OQ=="}, headers=users_only
    )
    assert missing.codes == ["NOT_FOUND"]
