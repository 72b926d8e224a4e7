"""CUSTOMER_DELETED erases the person: after it no table holds their e-mail, phone or
name, their contacts stay only as hashes (no message can reach them), late events about
the deleted account write nothing back, and other packages' erasers run too."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.models import Base
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Message, MessageStatus, Undeliverable
from plugin.profiles import erasers
from plugin.profiles.erasers import ErasureScope
from plugin.profiles.models import IdentityKind, Profile
from plugin.profiles.privacy import anonymize_profile, export_profile
from plugin.profiles.suppression import is_suppressed
from plugin.tracking.models import Checkpoint, Shipment
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop

LINES = [("Mug", "MUG-1", "Kitchen", 1, 12.5)]


async def _all_folded(db: Database, installation_id: int) -> bool:
    async with db.session() as session:
        statuses = list(
            await session.scalars(
                select(InboxEvent.status).where(InboxEvent.installation_id == installation_id)
            )
        )
    return bool(statuses) and all(s is InboxStatus.DONE for s in statuses)


async def _tables_holding(db: Database, needles: list[str]) -> list[str]:
    """Every table (and column) in which any of the strings still appears."""
    found = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    text = str(value).lower()
                    if any(needle in text for needle in needles):
                        found.append(f"{table.name}.{column}")
    return sorted(set(found))


async def _message_and_parcel(
    db: Database, installation_id: int, email: str, first: str, last: str
) -> None:
    """What the mailings and tracking packages keep about the person: a sent e-mail and a
    parcel whose carrier wrote their name; their erasers must clear both."""
    now = utcnow()
    async with unit_of_work(db) as session:
        profile_id = await session.scalar(
            select(Profile.id).where(
                Profile.installation_id == installation_id, Profile.email == email
            )
        )
        assert profile_id is not None
        session.add(
            Message(
                installation_id=installation_id,
                idempotency_key=f"erase-test-{profile_id}",
                profile_id=profile_id,
                channel=Channel.EMAIL,
                template_key="welcome",
                recipient=email,
                subject=f"Welcome back, {first}!",
                variables={"greeting": f"{first} {last}"},
                status=MessageStatus.SENT,
                sent_at=now,
            )
        )
        session.add(
            Undeliverable(
                installation_id=installation_id,
                channel=Channel.EMAIL,
                address=email,
                reason="550 no such user",
            )
        )
        shipment = Shipment(
            installation_id=installation_id,
            fulfillment_saleor_id="RnVsZmlsbG1lbnQ6OTk=",
            order_saleor_id="T3JkZXI6OTk=",
            profile_id=profile_id,
            tracking_number="ERASE123",
            carrier="manual",
            carrier_source="test",
            carrier_text=f"Delivered to {first} {last}",
            destination_city="Gotham",
            shipped_at=now,
            status_changed_at=now,
            source_updated_at=now,
        )
        session.add(shipment)
        await session.flush()
        session.add(
            Checkpoint(
                installation_id=installation_id,
                shipment_id=shipment.id,
                occurred_at=now,
                status=shipment.status,
                message=f"Signed by {last}",
                location="Gotham",
                fingerprint="erase-test",
            )
        )


async def test_customer_deleted_in_saleor_erases_the_person_everywhere(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    tag = uuid.uuid4().hex[:8]
    email, first, last = f"zq.{tag}@example.com", f"Zelda{tag}", f"Quixote{tag}"
    shop = FakeShop()
    events = shop.create_customer(
        email, first_name=first, last_name=last, phone="+12025550123", city="Gotham"
    )
    user_id = shop.user_id(email)
    order = shop.create_order(user_id=user_id, lines=LINES, phone="+12025550123")[0]
    events += [order, *shop.pay_order(order.object_id)]
    events += shop.create_checkout(user_id=user_id, lines=LINES, phone="+12025550123")
    stale_update = shop.update_customer(user_id, city="Metropolis")[0]
    for event in events:
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    await eventually(lambda: _all_folded(db, installation_id))
    needles = [email, first.lower(), last.lower(), "2025550123", "gotham"]
    await _message_and_parcel(db, installation_id, email, first, last)
    assert await _tables_holding(db, needles)  # the test sees the person before…

    for event in shop.delete_customer(user_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    await eventually(lambda: _all_folded(db, installation_id))

    assert await _tables_holding(db, needles) == []  # …and nowhere after
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.saleor_deleted_at.isnot(None)
            )
        )
        assert profile is not None
        # Anonymous figures stay for the statistics.
        assert (profile.orders_count, profile.paid_orders_count) == (1, 1)
        assert profile.email is None
        assert await is_suppressed(session, installation_id, IdentityKind.EMAIL, email.upper())
        assert await is_suppressed(session, installation_id, IdentityKind.SALEOR_USER, user_id)
        # this shop's: the app's worker may meanwhile fold another test's leftovers
        shop_profiles = select(Profile.id).where(Profile.installation_id == installation_id)
        profiles = len(list(await session.scalars(shop_profiles)))

    # A late update from before the deletion writes nobody back.
    assert (await saleor.adeliver(app_server.base_url, stale_update)).status_code == 200
    await eventually(lambda: _all_folded(db, installation_id))
    assert await _tables_holding(db, needles) == []
    async with db.session() as session:
        assert len(list(await session.scalars(shop_profiles))) == profiles


async def test_registered_erasers_and_exporters_run_with_the_persons_scope(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    installation_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[ErasureScope] = []

    async def erase_parcels(session: Any, scope: ErasureScope) -> int:
        seen.append(scope)
        return 2

    async def export_parcels(session: Any, scope: ErasureScope) -> list[dict[str, Any]]:
        return [{"tracking": "1Z999", "at": datetime(2026, 1, 1)}]

    monkeypatch.setitem(erasers._ERASERS, "parcels", erase_parcels)
    monkeypatch.setitem(erasers._EXPORTERS, "parcels", export_parcels)
    shop = FakeShop()
    event = shop.create_customer("eraser@example.com", first_name="Ingrid", phone="+12025550177")[0]
    assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    await eventually(lambda: _all_folded(db, installation_id))

    async with unit_of_work(db) as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id,
                Profile.email == "eraser@example.com",
            )
        )
        assert profile is not None
        document = await export_profile(session, profile, datetime.now().astimezone())
        erasure = await anonymize_profile(session, profile, datetime.now().astimezone())

    assert document["parcels"] == [{"tracking": "1Z999", "at": "2026-01-01T00:00:00"}]
    # the registered ones, beside the app's own (messages and shipments: none here)
    assert erasure.other == {"messages": 0, "parcels": 2, "shipments": 0}
    (scope,) = seen
    assert scope.profile_id == profile.id
    assert "eraser@example.com" in scope.needles
    assert "ingrid" in scope.needles
    assert scope.pattern is not None
    assert scope.pattern.sub("*", "Mail to ERASER@example.com") == "Mail to *"
