"""Run twice, adds nothing twice — across paths (issue 15.3, 15.7): an object first seen by
webhook and then imported (or imported, then seen by webhook) has each entry once; a
fulfillment has one entry, brought up to date by its events; existing data is migrated."""

from __future__ import annotations

import importlib.util
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.importer.models import ImportStatus
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from tests.conftest import new_installation
from tests.importing import queue_run, run_import, shop_installation
from tests.simulator import Event, FakeShop

LINES = [("Mug", "MUG-1", "Kitchen", 2, 12.5)]
MIGRATION = next(
    (Path(__file__).resolve().parents[1] / "plugin/db/migrations/versions").glob(
        "*_timeline_object_keys.py"
    )
)


def _shop() -> tuple[FakeShop, list[Event]]:
    """A registered customer's cart, changed, delivered twice with one state, then an
    order from it; and a guest's order."""
    shop = FakeShop()
    events = shop.create_customer("ann@example.com", first_name="Ann", last_name="Lee")
    user_id = shop.user_id("ann@example.com")
    events += shop.create_checkout(user_id=user_id, lines=LINES)
    checkout_id = events[-1].object_id
    events += shop.update_checkout(checkout_id, city="Leeds")
    # Saleor sends CHECKOUT_UPDATED for several mutations of one save: the same state
    # (`updatedAt`) under another `issuedAt`.
    again = events[-1]
    events.append(_reissued(again, seconds=0.2))
    events += shop.complete_checkout(checkout_id)
    events += shop.create_order(email="guest@example.com", lines=LINES)
    return shop, events


def _reissued(event: Event, *, seconds: float) -> Event:
    issued = event.issued_at + timedelta(seconds=seconds)
    payload = {**event.payload, "issuedAt": issued.isoformat().replace("+00:00", "Z")}
    return Event(event.event_type, event.typename, payload, event.body, issued)


async def _fold(db: Database, installation_id: int, events: list[Event]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)


async def _entries(db: Database, installation_id: int) -> Counter[tuple[str, str | None]]:
    async with db.session() as session:
        rows = await session.scalars(
            select(TimelineEntry).where(TimelineEntry.installation_id == installation_id)
        )
        return Counter((row.kind, row.subject_id) for row in rows)


async def _import(db: Database, settings: Settings, installation_id: int) -> None:
    run_id = await queue_run(db, installation_id)
    assert await run_import(db, settings, run_id) is ImportStatus.DONE


def _once(entries: Counter[tuple[str, str | None]]) -> None:
    repeated = {key: n for key, n in entries.items() if n > 1}
    assert repeated == {}


async def test_webhooks_first_then_two_imports_add_each_entry_once(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop, events = _shop()
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    await _fold(db, installation_id, events)
    after_webhooks = await _entries(db, installation_id)
    _once(after_webhooks)
    kinds = Counter(kind for kind, _ in after_webhooks.elements())
    assert kinds["order_created"] == 2
    assert kinds["checkout_created"] == 1
    assert kinds["checkout_updated"] == 1  # one state, delivered twice
    assert kinds["customer_created"] == 1

    await _import(db, settings, installation_id)
    await _import(db, settings, installation_id)
    assert await _entries(db, installation_id) == after_webhooks


async def test_an_import_then_the_webhooks_add_each_entry_once(
    saleor: Any, db: Database, settings: Settings
) -> None:
    shop, events = _shop()
    saleor.shop = shop
    installation_id = await shop_installation(db, saleor, settings)
    await _import(db, settings, installation_id)
    imported = await _entries(db, installation_id)
    await _fold(db, installation_id, events)
    await _fold(db, installation_id, events)  # and every webhook delivered again
    entries = await _entries(db, installation_id)
    _once(entries)
    assert set(imported) <= set(entries)
    assert Counter(kind for kind, _ in entries.elements())["order_created"] == 2


async def test_a_fulfillment_has_one_entry_brought_up_to_date(db: Database) -> None:
    installation_id = await new_installation(db)
    shop = FakeShop()
    order = shop.create_order(email="ann@example.com", lines=LINES)[0]
    created = shop.fulfill(order.object_id, tracking_number="111", needs_approval=True)
    fulfillment_id = created[0].object_id
    later = shop.approve_fulfillment(fulfillment_id) + shop.set_tracking_number(
        fulfillment_id, "1Z999AA10123456785"
    )
    # The newest event first: an older snapshot arriving late changes nothing shown.
    await _fold(db, installation_id, [order, *later[::-1], *created])

    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.installation_id == installation_id,
                    TimelineEntry.subject_type == "fulfillment",
                )
            )
        )
    [entry] = rows
    assert entry.kind == "fulfillment_created"
    assert entry.summary.startswith("Shipped: order #")
    assert entry.summary.endswith("tracking 1Z999AA10123456785")
    assert entry.occurred_at == created[0].issued_at  # when it was first shipped
    assert entry.data is not None
    assert [e["status"] for e in entry.data["events"]] == [
        "WAITING_FOR_APPROVAL",
        "FULFILLED",
        "FULFILLED",
    ]

    await _fold(db, installation_id, shop.cancel_fulfillment(fulfillment_id))
    async with db.session() as session:
        cancelled = await session.get(TimelineEntry, entry.id)
    assert cancelled is not None
    assert cancelled.kind == "fulfillment_canceled"
    assert cancelled.summary.startswith("Shipment cancelled")


async def test_the_migration_merges_entries_written_under_the_old_keys(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id)
        session.add(profile)
        await session.flush()

        def old(kind: str, subject: str, seconds: float, subject_type: str = "order") -> Any:
            at = now + timedelta(seconds=seconds)
            return TimelineEntry(
                installation_id=installation_id,
                profile_id=profile.id,
                kind=kind,
                occurred_at=at,
                subject_type=subject_type,
                subject_id=subject,
                summary=kind,
                dedup_key=f"{kind}:{subject}:{at.isoformat()}",
            )

        session.add_all(
            [
                old("order_created", "O1", 0),  # the webhook's
                old("order_created", "O1", -0.01),  # the import's
                old("order_updated", "O1", 5),
                old("order_updated", "O1", 6),
                old("fulfillment_created", "F1", 10, "fulfillment"),
                old("fulfillment_approved", "F1", 11, "fulfillment"),
                old("fulfillment_tracking_number_updated", "F1", 12, "fulfillment"),
            ]
        )

    spec = importlib.util.spec_from_file_location("timeline_object_keys", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def upgrade(connection: Any) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            module.upgrade()

    async with db.engine.begin() as connection:
        await connection.run_sync(upgrade)

    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.installation_id == installation_id)
                .order_by(TimelineEntry.occurred_at)
            )
        )
    keys = [(row.kind, row.dedup_key) for row in rows]
    assert keys[0] == ("fulfillment_created", "fulfillment:F1") or keys[0][0] == "order_created"
    by_kind = Counter(row.kind for row in rows)
    assert by_kind == Counter({"order_created": 1, "order_updated": 2, "fulfillment_created": 1})
    [created] = [row for row in rows if row.kind == "order_created"]
    assert created.dedup_key == "order_created:O1"
    [shipped] = [row for row in rows if row.subject_id == "F1"]
    assert shipped.dedup_key == "fulfillment:F1"
    assert shipped.summary == "fulfillment_tracking_number_updated"  # the newest
    assert shipped.occurred_at == now + timedelta(seconds=10)  # the first
