"""Realistic event sequences from a FakeShop, shared by the story and property tests."""

from __future__ import annotations

from dataclasses import dataclass

from tests.simulator import Event, FakeShop

MIA = "Mia.Laurent@Example.com"
BOB = "bob@example.org"


@dataclass
class Story:
    events: list[Event]
    mia_user_id: str
    first_order_id: str
    second_order_id: str
    cancelled_order_id: str
    abandoned_checkout_id: str
    converted_checkout_id: str


def two_customers(shop: FakeShop) -> Story:
    """Mia: guest checkout from a newsletter → paid, shipped order → registers → orders again
    (partly refunded) → leaves a cart → a cancelled order. Bob: one guest order that needs
    approval before shipping. Every event a real Saleor would send along the way."""
    events: list[Event] = []

    # Mia arrives from the autumn newsletter and checks out as a guest.
    checkout = shop.create_checkout(
        email=MIA,
        lines=[("Linen shirt", "SHIRT-L", "Apparel", 1, 49.0)],
        city="Lyon",
        country="FR",
        phone="06 12 34 56 78",
        metadata={"utm_source": "newsletter", "utm_campaign": "autumn"},
    )
    converted = checkout[0].object_id
    events += checkout
    events += shop.update_checkout(
        converted,
        lines=[
            ("Linen shirt", "SHIRT-L", "Apparel", 1, 49.0),
            ("Wool socks", "SOCK-W", "Accessories", 2, 8.0),
        ],
    )
    events += shop.pay_checkout(converted)
    placed = shop.complete_checkout(converted)
    first_order = placed[0].object_id
    events += placed
    shipped = shop.fulfill(first_order, tracking_number="1Z999AA10123456784")
    events += shipped
    events += shop.set_tracking_number(shipped[0].object_id, "1Z999AA10123456785")

    # She registers with the same address (Saleor keeps the e-mail's case as typed).
    registered = shop.create_customer(
        MIA.lower(),
        first_name="Mia",
        last_name="Laurent",
        phone="+33 6 12 34 56 78",
        city="Lyon",
        country="FR",
        metadata={"marketing_consent_email": "true"},
    )
    mia = registered[0].object_id
    events += registered

    # A second order, confirmed, paid, then partly refunded.
    second = shop.create_order(
        user_id=mia,
        lines=[("Rain jacket", "JACKET-R", "Apparel", 1, 120.0)],
        city="Lyon",
        country="FR",
    )
    second_order = second[0].object_id
    events += second
    events += shop.confirm_order(second_order)
    events += shop.pay_order(second_order)
    events += shop.set_order_metadata(second_order, {"gift": "no"})
    events += shop.refund_order(second_order, amount=20.0)

    # A cart she leaves behind.
    cart = shop.create_checkout(user_id=mia, lines=[("Scarf", "SCARF-1", "Accessories", 1, 25.0)])
    abandoned = cart[0].object_id
    events += cart

    # An order she cancels.
    third = shop.create_order(user_id=mia, lines=[("Beanie", "BEANIE-1", "Accessories", 1, 15.0)])
    cancelled = third[0].object_id
    events += third
    events += shop.cancel_order(cancelled)

    # She moves to Paris and changes her surname.
    events += shop.update_customer(mia, last_name="Laurent-Roy", city="Paris")

    # Bob: a guest order whose fulfilment waits for approval.
    bob_order = shop.create_order(
        email=BOB, lines=[("Mug", "MUG-1", "Kitchen", 2, 12.5)], city="Leeds", country="GB"
    )
    events += bob_order
    events += shop.pay_order(bob_order[0].object_id)
    pending = shop.fulfill(bob_order[0].object_id, needs_approval=True)
    events += pending
    events += shop.approve_fulfillment(pending[0].object_id)

    return Story(
        events=events,
        mia_user_id=mia,
        first_order_id=first_order,
        second_order_id=second_order,
        cancelled_order_id=cancelled,
        abandoned_checkout_id=abandoned,
        converted_checkout_id=converted,
    )
