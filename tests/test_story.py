"""A realistic customer story, driven over HTTP exactly as Saleor would deliver it.

The app is installed through `/api/register`, then every webhook of the story is signed
by the simulator and posted — shuffled, with some delivered twice — and the CRM must end
with one card per real customer, the right figures, source and timeline.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from plugin.commerce.models import Checkout, CheckoutState, Fulfillment, Order
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile
from plugin.timeline.models import TimelineEntry
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop
from tests.stories import BOB, MIA, two_customers


async def _all_folded(db: Database, installation_id: int, expected: int) -> bool:
    async with db.session() as session:
        done = await session.scalar(
            select(func.count()).where(
                InboxEvent.installation_id == installation_id,
                InboxEvent.status == InboxStatus.DONE,
            )
        )
    return done == expected


async def _profile(db: Database, installation_id: int, email: str) -> Profile:
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.email == email.lower()
            )
        )
    assert profile is not None, email
    return profile


async def test_customer_story_over_http(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    story = two_customers(FakeShop(app_id=saleor.app_id))
    deliveries = list(story.events)
    rng = random.Random(2026)
    rng.shuffle(deliveries)
    deliveries += rng.sample(story.events, 6)  # Saleor retries: the same bytes again
    for event in deliveries:
        response = await saleor.adeliver(app_server.base_url, event)
        assert response.status_code == 200, (event.event_type, response.text)
    await eventually(lambda: _all_folded(db, installation_id, len(story.events)))

    async with db.session() as session:
        profiles = await session.scalar(
            select(func.count()).where(Profile.installation_id == installation_id)
        )
    assert profiles == 2  # Mia (guest, then registered) and Bob

    mia = await _profile(db, installation_id, MIA)
    assert mia.saleor_user_id == story.mia_user_id
    assert (mia.first_name, mia.last_name) == ("Mia", "Laurent-Roy")  # newest wins
    assert (mia.city, mia.country) == ("Paris", "FR")
    assert mia.phone == "+33612345678"  # national and international forms: one number
    assert (mia.utm_source, mia.utm_campaign) == ("newsletter", "autumn")  # first touch
    # Orders: #1 paid 70.00, #2 paid 125.00 with 20.00 refunded, #3 cancelled.
    assert mia.orders_count == 2
    assert mia.paid_orders_count == 2
    assert mia.cancelled_orders_count == 1
    assert mia.refunded_orders_count == 1
    assert mia.currency == "USD"
    assert mia.total_spent == Decimal("175.00")
    assert mia.average_order_value == Decimal("97.50")
    assert mia.channel == "default-channel"  # the channel of her latest order

    async with db.session() as session:
        orders = {
            o.saleor_id: o
            for o in await session.scalars(select(Order).where(Order.profile_id == mia.id))
        }
        checkouts = {
            c.saleor_id: c
            for c in await session.scalars(select(Checkout).where(Checkout.profile_id == mia.id))
        }
        shipments = list(
            await session.scalars(select(Fulfillment).where(Fulfillment.profile_id == mia.id))
        )
        identities = {
            (i.kind, i.value): i.marketing_consent
            for i in await session.scalars(select(Identity).where(Identity.profile_id == mia.id))
        }
        timeline = list(
            await session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.profile_id == mia.id)
                .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
            )
        )
    assert set(orders) == {story.first_order_id, story.second_order_id, story.cancelled_order_id}
    first = orders[story.first_order_id]
    assert first.checkout_saleor_id == story.converted_checkout_id
    assert first.utm_source == "newsletter"  # the order carries its checkout's source
    assert first.status == "FULFILLED"
    assert orders[story.cancelled_order_id].status == "CANCELED"
    assert orders[story.second_order_id].total_refunded == Decimal("20.00")

    assert checkouts[story.converted_checkout_id].state is CheckoutState.CONVERTED
    assert checkouts[story.converted_checkout_id].order_saleor_id == story.first_order_id
    assert checkouts[story.converted_checkout_id].quantity == 3  # the last cart, not the first
    assert checkouts[story.abandoned_checkout_id].state is CheckoutState.OPEN

    assert [(s.status, s.tracking_number) for s in shipments] == [
        ("FULFILLED", "1Z999AA10123456785")  # the corrected tracking number
    ]
    assert identities[(IdentityKind.EMAIL, MIA.lower())] is ConsentState.GRANTED
    assert identities[(IdentityKind.PHONE, "+33612345678")] is None  # e-mail consent only

    kinds = [entry.kind for entry in timeline]
    assert kinds[0] == "checkout_created"
    assert kinds.count("order_created") == 3
    assert "customer_created" in kinds
    # One entry per shipment, showing its corrected tracking number (issue 15.7).
    [shipped] = [entry for entry in timeline if entry.subject_type == "fulfillment"]
    assert shipped.kind == "fulfillment_created"
    assert shipped.summary.endswith("tracking 1Z999AA10123456785")
    times = [entry.occurred_at for entry in timeline]
    assert times == sorted(times)
    assert len(set((e.kind, e.subject_id, e.occurred_at) for e in timeline)) == len(timeline)

    bob = await _profile(db, installation_id, BOB)
    assert bob.saleor_user_id is None  # a guest
    assert (bob.city, bob.country) == ("Leeds", "GB")
    assert (bob.orders_count, bob.paid_orders_count) == (1, 1)
    assert bob.total_spent == Decimal("30.00")
