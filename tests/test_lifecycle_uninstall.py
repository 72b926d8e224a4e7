"""Uninstall (APP_DELETED): the shop is marked removed and its jobs stop; a re-install
within the retention finds everything and resumes; after it the data is purged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from plugin.commerce.models import Order
from plugin.db.engine import Database
from plugin.db.models import Base
from plugin.importer.models import ImportRun, ImportStatus
from plugin.importer.service import start_import
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.lifecycle.service import apply_retention
from plugin.saleor.models import Installation, InstallationStatus
from plugin.settings import Settings
from tests.conftest import RunningApp, eventually, register
from tests.importing import count, shop_with_history


async def _installation(db: Database, api_url: str) -> Installation | None:
    async with db.session() as session:
        return await session.scalar(
            select(Installation).where(Installation.saleor_api_url == api_url)
        )


async def _latest_run(db: Database, installation_id: int) -> ImportRun | None:
    async with db.session() as session:
        return await session.scalar(
            select(ImportRun)
            .where(ImportRun.installation_id == installation_id)
            .order_by(ImportRun.id.desc())
            .limit(1)
        )


async def _rows_left(db: Database, installation_id: int) -> dict[str, int]:
    left = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if "installation_id" in table.c:
                n = await session.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.installation_id == installation_id)
                )
                if n:
                    left[table.name] = int(n)
    return left


async def test_uninstall_stops_reinstall_resumes_retention_purges(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings
) -> None:
    shop = shop_with_history(customers=2, guest_orders=1)
    saleor.shop = shop
    assert (await register(app_server, saleor)).status_code == 200
    installation = await _installation(db, saleor.api_url)
    assert installation is not None
    shop_id = installation.id

    async def imported() -> bool:
        run = await _latest_run(db, shop_id)
        return run is not None and run.status is ImportStatus.DONE

    await eventually(imported, timeout=60)
    assert await count(db, Order, shop_id) == 3
    # A second import waits in line when the merchant uninstalls.
    async with unit_of_work(db) as session:
        waiting = (await start_import(session, shop_id, requested_by="test", enqueue=False)).id

    for event in shop.delete_app():
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    removed = await _installation(db, saleor.api_url)
    assert removed is not None
    assert removed.status is InstallationStatus.REMOVED
    assert removed.removed_at is not None
    # Applied where it was received, and so folded: the fold job, running later (after
    # the re-install below, it has), must not uninstall the shop again.
    async with db.session() as session:
        deleted = await session.scalar(
            select(InboxEvent.status).where(
                InboxEvent.installation_id == shop_id, InboxEvent.event_type == "app_deleted"
            )
        )
    assert deleted is InboxStatus.DONE
    cancelled = await _latest_run(db, shop_id)
    assert cancelled is not None
    assert (cancelled.id, cancelled.status) == (waiting, ImportStatus.CANCELLED)
    # Webhooks are refused from now on.
    order_event = shop.create_order(email="late@example.com", lines=[("Mug", "M", "K", 1, 3.0)])
    assert (await saleor.adeliver(app_server.base_url, order_event[0])).status_code == 401

    # Within the retention nothing is purged; a re-install finds the data and resumes.
    report = await apply_retention(db, settings, removed.removed_at + timedelta(days=29))
    assert shop_id not in [p.installation_id for p in report.purged]
    assert (await register(app_server, saleor)).status_code == 200
    back = await _installation(db, saleor.api_url)
    assert back is not None
    assert (back.id, back.status) == (shop_id, InstallationStatus.ACTIVE)

    async def resumed() -> ImportRun | None:
        run = await _latest_run(db, shop_id)
        return run if run is not None and run.status is ImportStatus.DONE else None

    # the worker also serves every other test's shops: give it time under a full suite
    run = await eventually(resumed, timeout=180)
    assert run.id == waiting  # the cancelled run was resumed, not a new one started
    assert await count(db, Order, shop_id) == 4  # with the order placed meanwhile

    # Uninstalled again and past the retention: everything goes.
    for event in shop.delete_app():
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    gone = await _installation(db, saleor.api_url)
    assert gone is not None
    assert gone.removed_at is not None
    report = await apply_retention(db, settings, gone.removed_at + timedelta(days=30, seconds=1))
    assert shop_id in [p.installation_id for p in report.purged]
    assert await _installation(db, saleor.api_url) is None
    assert await _rows_left(db, shop_id) == {}
