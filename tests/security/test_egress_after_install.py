"""Issue 16 §8, after install: every call the app makes to a stored Saleor URL (tracking
write-backs, `crm import`, the import job) goes through the egress policy, so a shop whose
name now resolves to an address that is not public is refused before any connection.

As in test_ssrf.py: the app is set up as deployed with the default `ALLOWED_SALEOR_URLS=*`,
under which the loopback simulator stands for an internal address; the simulator records
every request that reaches it, and none may.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.importer.models import ImportRun, ImportStatus
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.saleor.egress import SaleorEgress
from plugin.settings import Settings
from plugin.tracking.models import AlertOutbox, Shipment
from plugin.tracking.shipments import follow_fulfillment
from tests.conftest import RunningApp, eventually
from tests.importing import shop_installation
from tests.simulator import FakeShop
from tests.test_cli import crm


async def _waiting_alert(db: Database, installation_id: int) -> int:
    """A staff alert in the outbox, due now, for an order of the simulator's shop."""
    shop = FakeShop(now=utcnow())
    order = shop.create_order(email="zoe@example.com", lines=[("Lamp", "LAMP", "Home", 1, 30.0)])
    event = shop.fulfill(order[0].object_id, tracking_number="RET0000001")[0]
    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id, email="zoe@example.com")
        session.add(profile)
        await session.flush()
        shipment = await follow_fulfillment(
            session,
            installation_id,
            event.payload,
            profile_id=profile.id,
            issued_at=event.issued_at,
        )
        assert shipment is not None
        alert = AlertOutbox(
            installation_id=installation_id,
            shipment_id=shipment.id,
            key="returned",
            message="The parcel is being returned to the sender.",
            raised_at=utcnow(),
        )
        session.add(alert)
        await session.flush()
        return alert.id


async def test_tracking_alerts_are_not_written_to_a_shop_now_on_an_internal_address(
    app_server: RunningApp,  # its in-process worker runs the job's event loop
    saleor: Any,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobs.runtime import context
    from jobs.tracking import tracking_tick

    installation_id = await shop_installation(db, saleor, settings)
    # As if deployed with `*`: the loopback simulator now stands for an internal address.
    monkeypatch.setattr(context(), "saleor_egress", SaleorEgress("*"), raising=False)
    alert_id = await _waiting_alert(db, installation_id)

    await asyncio.to_thread(tracking_tick.fn)

    async def refused() -> AlertOutbox | None:
        async with db.session() as session:
            alert = await session.get(AlertOutbox, alert_id)
        return alert if alert is not None and alert.last_error else None

    # The app's own tick may have taken it first: the outcome is the same.
    alert = await eventually(refused)
    assert alert.sent_at is None
    assert "not a public address" in (alert.last_error or "")
    assert saleor.graphql_requests == []  # nothing reached the shop
    async with db.session() as session:
        shipment = await session.scalar(
            select(Shipment).where(Shipment.installation_id == installation_id)
        )
    assert shipment is not None
    assert shipment.alerts_pending


async def test_crm_import_holds_to_the_policy_after_install(
    saleor: Any, db: Database, settings: Settings
) -> None:
    installation_id = await shop_installation(db, saleor, settings)
    result = crm("import", "--installation", str(installation_id), ALLOWED_SALEOR_URLS="*")
    assert result.returncode == 1, result.stderr
    assert "not a public address" in result.stderr
    assert "Traceback" not in result.stderr
    assert saleor.graphql_requests == []
    async with db.session() as session:
        run = await session.scalar(
            select(ImportRun).where(ImportRun.installation_id == installation_id)
        )
    assert run is not None
    assert run.status is ImportStatus.FAILED
