"""Helpers for the GraphQL API tests: a client that posts as the dashboard would, and
customers with orders, checkouts and timeline seeded straight into the database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Message, MessageStatus
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.timeline.models import TimelineEntry
from plugin.tracking.models import Checkpoint, Shipment
from plugin.tracking.statuses import Status
from tests.conftest import RunningApp

ALL_PERMISSIONS = ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS", "MANAGE_APPS"]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def codes(self) -> list[str]:
        return [e["extensions"]["code"] for e in self.body.get("errors", [])]


def dashboard_headers(saleor: Any, **claims: Any) -> dict[str, str]:
    """What the dashboard extension sends: app-sdk's header pair."""
    return {
        "authorization-bearer": saleor.make_jwt(**claims),
        "saleor-api-url": saleor.api_url,
    }


def staff_headers(saleor: Any, permissions: list[str] | None = None) -> dict[str, str]:
    perms = ALL_PERMISSIONS if permissions is None else permissions
    return dashboard_headers(saleor, user_permissions=perms, permissions=perms)


def expired_headers(saleor: Any) -> dict[str, str]:
    now = int(time.time())
    return dashboard_headers(saleor, iat=now - 600, exp=now - 300, user_permissions=ALL_PERMISSIONS)


async def gql(
    app: RunningApp,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=60) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
        )
    return Answer(response.status_code, response.json())


async def seed_customer(
    db: Database,
    installation_id: int,
    email: str,
    *,
    orders: int = 0,
    lines: int = 1,
    checkouts: int = 0,
    timeline: int = 0,
    messages: int = 0,
    shipments: int = 0,
    tags: tuple[str, ...] = (),
    phone: str | None = None,
    first_name: str | None = None,
) -> int:
    """A profile with paid orders (one a day back from yesterday), carts and events."""
    now = utcnow()
    async with unit_of_work(db) as session:
        profile = Profile(
            installation_id=installation_id,
            email=email,
            phone=phone,
            first_name=first_name,
            orders_count=orders,
            paid_orders_count=orders,
            currency="EUR" if orders else None,
            total_spent=Decimal(25 * orders),
            average_order_value=Decimal(25) if orders else Decimal(0),
            first_order_at=now - timedelta(days=orders) if orders else None,
            last_order_at=now - timedelta(days=1) if orders else None,
        )
        session.add(profile)
        await session.flush()
        session.add(
            Identity(
                installation_id=installation_id,
                profile_id=profile.id,
                kind=IdentityKind.EMAIL,
                value=email,
                marketing_consent=ConsentState.GRANTED,
                consent_updated_at=now,
                consent_source="test",
            )
        )
        for tag in tags:
            session.add(
                ProfileTag(
                    installation_id=installation_id, profile_id=profile.id, tag=tag, created_at=now
                )
            )
        for n in range(orders):
            placed = now - timedelta(days=n + 1)
            order = Order(
                installation_id=installation_id,
                saleor_id=f"order-{profile.id}-{n}",
                profile_id=profile.id,
                number=str(n + 1),
                status="FULFILLED",
                is_paid=True,
                charge_status="FULL",
                currency="EUR",
                total_gross=Decimal(25),
                placed_at=placed,
                source_updated_at=placed,
            )
            session.add(order)
            await session.flush()
            for i in range(lines):
                session.add(
                    OrderLine(
                        installation_id=installation_id,
                        order_id=order.id,
                        saleor_id=f"line-{order.id}-{i}",
                        product_name=f"Mug {i}",
                        quantity=1,
                        total_price_gross=Decimal(25),
                        currency="EUR",
                    )
                )
        for n in range(checkouts):
            started = now - timedelta(hours=n + 3)
            session.add(
                Checkout(
                    installation_id=installation_id,
                    saleor_id=f"checkout-{profile.id}-{n}",
                    profile_id=profile.id,
                    email=email,
                    currency="EUR",
                    total_gross=Decimal(10),
                    lines_count=1,
                    quantity=1,
                    state=CheckoutState.OPEN,
                    started_at=started,
                    source_updated_at=started,
                )
            )
        for n in range(timeline):
            kind = ("order_created", "checkout_updated", "customer_updated")[n % 3]
            session.add(
                TimelineEntry(
                    installation_id=installation_id,
                    profile_id=profile.id,
                    occurred_at=now - timedelta(minutes=n + 1),
                    kind=kind,
                    summary=f"event {n}",
                    dedup_key=f"seed:{profile.id}:{n}",
                )
            )
        for n in range(messages):
            session.add(
                Message(
                    installation_id=installation_id,
                    idempotency_key=f"seed:{profile.id}:{n}",
                    profile_id=profile.id,
                    channel=Channel.EMAIL,
                    template_key="win_back",
                    recipient=email,
                    subject=f"We miss you {n}",
                    status=MessageStatus.SENT,
                    created_at=now - timedelta(hours=n + 1),
                    sent_at=now - timedelta(hours=n + 1),
                )
            )
        for n in range(shipments):
            shipped = now - timedelta(days=n + 1)
            shipment = Shipment(
                installation_id=installation_id,
                fulfillment_saleor_id=f"fulfillment-{profile.id}-{n}",
                order_saleor_id=f"order-{profile.id}-{n}",
                order_number=str(n + 1),
                profile_id=profile.id,
                tracking_number=f"TRACK{profile.id}X{n}",
                carrier="manual",
                carrier_source="staff",
                status=Status.IN_TRANSIT,
                shipped_at=shipped,
                status_changed_at=shipped,
                source_updated_at=shipped,
            )
            session.add(shipment)
            await session.flush()
            for step, status in enumerate((Status.INFO_RECEIVED, Status.IN_TRANSIT)):
                session.add(
                    Checkpoint(
                        installation_id=installation_id,
                        shipment_id=shipment.id,
                        occurred_at=shipped + timedelta(hours=step),
                        status=status,
                        message=status.value,
                        fingerprint=f"{shipment.id}:{step}",
                    )
                )
        await session.flush()
        return profile.id
