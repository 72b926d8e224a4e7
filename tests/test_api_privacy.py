"""GDPR through the API: the export holds everything we keep on a person, and after an
erasure no table holds their e-mail, phone or name while the anonymous figures stay."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, String, Text, select

from plugin.api.ids import to_global_id
from plugin.commerce.models import Checkout, Fulfillment, Order
from plugin.db.base import Base, utcnow
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.notes.models import Note
from plugin.profiles.models import Identity, IdentityKind, Profile
from plugin.profiles.suppression import is_suppressed
from plugin.timeline.models import TimelineEntry
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp

EXPORT = "mutation($c: ID!) { customerExport(id: $c) { customerId generatedAt document } }"
ANONYMIZE = """mutation($c: ID!) { customerAnonymize(id: $c) {
  identities orders checkouts notes inboxEvents timelineEntries
  customer { email phone firstName lastName ordersCount totalSpent { amount } firstOrderAt
    consent { email contacts { address status } } } } }"""


class Person:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.email = f"erase-{tag}@example.com"
        self.phone = "+336" + "".join(random.choice("0123456789") for _ in range(8))
        self.first_name = f"Zelda{tag}"
        self.last_name = f"Quill{tag}"
        self.street = f"{tag} Rue des Secrets"

    @property
    def strings(self) -> list[str]:
        return [self.email, self.phone, self.first_name, self.last_name, self.street]


async def seed_person(db: Database, installation_id: int, person: Person) -> int:
    """A customer whose PII sits in every place we know of."""
    pk = await seed_customer(
        db,
        installation_id,
        person.email,
        orders=2,
        checkouts=1,
        timeline=2,
        tags=("vip",),
        phone=person.phone,
        first_name=person.first_name,
    )
    now = utcnow()
    async with unit_of_work(db) as session:
        profile = await session.get(Profile, pk)
        assert profile is not None
        profile.last_name = person.last_name
        profile.city = "Lyon"
        profile.note = f"Call {person.first_name} on {person.phone}"
        profile.addresses = [
            {"firstName": person.first_name, "streetAddress1": person.street, "city": "Lyon"}
        ]
        profile.saleor_metadata = {"contact": person.email}
        session.add(
            Identity(
                installation_id=installation_id,
                profile_id=pk,
                kind=IdentityKind.PHONE,
                value=person.phone,
            )
        )
        for order in await session.scalars(select(Order).where(Order.profile_id == pk)):
            order.user_email = person.email
            order.shipping_city = "Lyon"
            order.saleor_metadata = {"gift_message": f"For {person.first_name} {person.last_name}"}
        for checkout in await session.scalars(select(Checkout).where(Checkout.profile_id == pk)):
            checkout.saleor_metadata = {"utm_source": "news", "email": person.email}
        session.add(
            Fulfillment(
                installation_id=installation_id,
                saleor_id=f"ful-{pk}",
                order_saleor_id=f"order-{pk}-0",
                profile_id=pk,
                status="FULFILLED",
                tracking_number="TRACK123",
                lines=[{"productName": "Mug", "recipient": person.last_name}],
                fulfilled_at=now,
                source_updated_at=now,
            )
        )
        session.add(
            TimelineEntry(
                installation_id=installation_id,
                profile_id=pk,
                occurred_at=now - timedelta(minutes=30),
                kind="customer_updated",
                summary=f"{person.first_name} {person.last_name} changed e-mail to {person.email}",
                data={"email": person.email, "address": {"street": person.street}},
                dedup_key=f"customer:{person.email}",
            )
        )
        session.add(
            Note(
                installation_id=installation_id,
                profile_id=pk,
                text=f"{person.first_name} prefers calls on {person.phone}",
                author_email="staff@example.com",
                created_at=now,
            )
        )
        body = json.dumps({"user": {"email": person.email.upper(), "lastName": person.last_name}})
        session.add(
            InboxEvent(
                installation_id=installation_id,
                event_type="CUSTOMER_UPDATED",
                body_sha256=uuid.uuid4().hex * 2,
                body=body,
                status=InboxStatus.PENDING,
                # waiting for its fold job, out of the running app's sweeper's reach
                received_at=now + timedelta(hours=1),
            )
        )
    return pk


async def tables_holding(db: Database, needles: list[str]) -> dict[str, set[str]]:
    """Every text or JSON column of every table, searched for each needle (any case)."""
    found: dict[str, set[str]] = {}
    lowered = [n.lower() for n in needles]
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in await session.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    text = (json.dumps(value) if not isinstance(value, str) else value).lower()
                    for needle in lowered:
                        if needle in text:
                            found.setdefault(f"{table.name}.{column.name}", set()).add(needle)
    return found


async def test_export_holds_everything(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    person = Person()
    pk = await seed_person(db, installation_id, person)
    c = to_global_id("Customer", pk)
    answer = await gql(app_server, EXPORT, {"c": c}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    export = answer.data["customerExport"]
    assert export["customerId"] == c
    doc = export["document"]
    assert doc["format"] == "saleor-crm.customer-export/1"
    assert doc["profile"]["email"] == person.email
    assert doc["profile"]["last_name"] == person.last_name
    assert doc["profile"]["total_spent"] == "50.0000"
    emails = [i for i in doc["identities"] if i["kind"] == "email"]
    assert emails[0]["value"] == person.email
    assert emails[0]["marketing_consent"] == "granted"
    assert emails[0]["consent_source"] == "test"
    assert emails[0]["consent_updated_at"]
    assert doc["tags"] == ["vip"]
    assert [n["text"] for n in doc["notes"]] == [
        f"{person.first_name} prefers calls on {person.phone}"
    ]
    assert len(doc["orders"]) == 2
    assert doc["orders"][0]["lines"][0]["product_name"] == "Mug 0"
    assert len(doc["checkouts"]) == 1
    assert "lines" in doc["checkouts"][0]
    assert doc["fulfillments"][0]["tracking_number"] == "TRACK123"
    assert any(e["kind"] == "customer_updated" for e in doc["timeline"])
    assert isinstance(doc["segments"], list)

    card = await gql(
        app_server,
        "query($c: ID!) { customer(id: $c) { timeline { nodes { kind } } } }",
        {"c": c},
        staff_headers(saleor),
    )
    kinds = [n["kind"] for n in card.data["customer"]["timeline"]["nodes"]]
    assert "customer_exported" in kinds

    forbidden = await gql(app_server, EXPORT, {"c": c}, staff_headers(saleor, ["MANAGE_ORDERS"]))
    assert forbidden.codes == ["FORBIDDEN"]
    missing = await gql(
        app_server, EXPORT, {"c": to_global_id("Customer", 10**9)}, staff_headers(saleor)
    )
    assert missing.codes == ["NOT_FOUND"]


async def test_anonymize_erases_pii_everywhere_and_keeps_figures(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    person = Person()
    pk = await seed_person(db, installation_id, person)
    assert set(await tables_holding(db, person.strings)) >= {
        "profiles.email",
        "identities.value",
        "orders.user_email",
        "timeline_entries.summary",
        "notes.text",
        "inbox_events.body",
    }
    c = to_global_id("Customer", pk)
    answer = await gql(app_server, ANONYMIZE, {"c": c}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    erased = answer.data["customerAnonymize"]
    assert erased["identities"] == 2
    assert erased["orders"] == 2
    assert erased["notes"] == 1
    assert erased["inboxEvents"] == 1
    customer = erased["customer"]
    assert customer["email"] is None
    assert customer["firstName"] is None
    assert customer["ordersCount"] == 2
    assert Decimal(customer["totalSpent"]["amount"]) == Decimal(50)
    assert customer["firstOrderAt"] is not None
    assert {c["status"] for c in customer["consent"]["contacts"]} == {"DENIED"}

    assert await tables_holding(db, person.strings) == {}

    async with db.session() as session:
        assert await is_suppressed(session, installation_id, IdentityKind.EMAIL, person.email)
        assert await is_suppressed(
            session, installation_id, IdentityKind.EMAIL, person.email.upper()
        )
        assert await is_suppressed(session, installation_id, IdentityKind.PHONE, person.phone)
        assert not await is_suppressed(
            session, installation_id, IdentityKind.EMAIL, "someone.else@example.com"
        )
        orders = list(await session.scalars(select(Order).where(Order.profile_id == pk)))
        assert [o.total_gross for o in orders] == [Decimal(25), Decimal(25)]
        assert all(o.placed_at is not None for o in orders)
        event = await session.scalar(
            select(TimelineEntry).where(
                TimelineEntry.profile_id == pk, TimelineEntry.kind == "customer_anonymized"
            )
        )
        assert event is not None
        assert "erased" in event.summary
        inbox = await session.scalar(
            select(InboxEvent).where(
                InboxEvent.installation_id == installation_id,
                InboxEvent.event_type == "CUSTOMER_UPDATED",
            )
        )
        assert inbox is not None
        assert inbox.status is InboxStatus.DONE

    again = await gql(app_server, ANONYMIZE, {"c": c}, staff_headers(saleor))
    assert "errors" not in again.body, again.body
    async with db.session() as session:
        assert await is_suppressed(session, installation_id, IdentityKind.EMAIL, person.email)
