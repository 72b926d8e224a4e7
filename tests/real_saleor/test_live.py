"""Live: what happens in Saleor reaches the CRM card by webhook within seconds.

Saleor sends each webhook inside the mutation that caused it (no Celery here), signed with
its key; the CRM stores it and folds it in its worker. Every step polls the CRM's API with
a deadline of `LIVE_SECONDS`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from plugin.commerce.models import Order
from tests.real_saleor.conftest import Shop, eventually
from tests.real_saleor.figures import expected_figures, saleor_orders
from tests.real_saleor.merchant import (
    Catalog,
    cancel,
    checkout_and_pay,
    create_customer,
    customer_token,
    find_catalog,
    fulfill,
    mark_paid,
    place_draft_order,
)
from tests.real_saleor.test_install_import import nonzero, spent_by_currency

LIVE_SECONDS = 15.0
CARD = """query($email: String!) { customer(email: $email) {
  email saleorUserId firstName lastName ordersCount firstOrderAt lastOrderAt
  spentByCurrency { amount currency }
  orders(first: 20) { edges { node { saleorId number status isPaid chargeStatus } } }
  shipments(first: 10) { edges { node { trackingNumber orderId status } } }
  checkouts(first: 10) { saleorId state orderSaleorId }
  timeline(first: 50) { edges { node { kind subjectId } } }
} }"""
CARD_BY_USER = CARD.replace("$email: String!", "$id: ID!").replace(
    "customer(email: $email)", "customer(saleorUserId: $id)"
)
# populatedb's customers log in with this password (`populatedb --user_password`).
POPULATEDB_PASSWORD = "password"
TOUCHED: set[str] = set()
PLACED: set[str] = set()  # Saleor ids of the orders these tests placed
SHOPPER: dict[str, Any] = {}  # the logged-in shopper (a populatedb customer)


def unique_email(kind: str) -> str:
    email = f"crm-{kind}-{uuid.uuid4().hex[:8]}@example.com"
    TOUCHED.add(email)
    return email


async def card(shop: Shop, email: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (await shop.crm(CARD, {"email": email}))["customer"]
    return found


def order_on(found: dict[str, Any] | None, saleor_id: str) -> dict[str, Any] | None:
    for edge in (found or {}).get("orders", {}).get("edges", []):
        if edge["node"]["saleorId"] == saleor_id:
            node: dict[str, Any] = edge["node"]
            return node
    return None


@pytest.fixture(scope="module")
async def catalog(shop: Shop) -> Catalog:
    return await find_catalog(shop.saleor)


async def test_customer_created_updated_deleted(shop: Shop) -> None:
    email = unique_email("account")
    user_id = await create_customer(shop.saleor, email, "Grace")

    async def created() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await shop.crm(CARD_BY_USER, {"id": user_id}))["customer"]
        return found if found and found["firstName"] == "Grace" else None

    found = await eventually(created, timeout=LIVE_SECONDS, what="customer_created on the card")
    assert found["email"] == email

    await shop.saleor.mutate(
        """mutation($id: ID!, $input: CustomerInput!) {
          customerUpdate(id: $id, input: $input) { user { id } errors { field message } }
        }""",
        {"id": user_id, "input": {"firstName": "Grace B.", "lastName": "Hopper"}},
    )

    async def updated() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await shop.crm(CARD_BY_USER, {"id": user_id}))["customer"]
        return found if found and found["lastName"] == "Hopper" else None

    found = await eventually(updated, timeout=LIVE_SECONDS, what="customer_updated on the card")
    assert found["firstName"] == "Grace B."

    await shop.saleor.mutate(
        "mutation($id: ID!) { customerDelete(id: $id) { user { id } errors { message } } }",
        {"id": user_id},
    )

    async def erased() -> bool:
        by_user = (await shop.crm(CARD_BY_USER, {"id": user_id}))["customer"]
        return by_user is None and await card(shop, email) is None

    # A deleted account's person is erased (README, data lifecycle): no longer findable.
    await eventually(erased, timeout=LIVE_SECONDS, what="customer_deleted erased the person")


async def test_draft_order_to_cancelled(shop: Shop, catalog: Catalog) -> None:
    email = unique_email("phone-order")
    order = await place_draft_order(shop.saleor, catalog, email)
    saleor_id = order["id"]
    PLACED.add(saleor_id)

    async def placed() -> dict[str, Any] | None:
        found = order_on(await card(shop, email), saleor_id)
        return found if found and found["status"] == "UNFULFILLED" else None

    await eventually(placed, timeout=LIVE_SECONDS, what="the completed draft on the card")

    await mark_paid(shop.saleor, saleor_id)

    async def paid() -> dict[str, Any] | None:
        found = order_on(await card(shop, email), saleor_id)
        return found if found and found["isPaid"] and found["chargeStatus"] == "FULL" else None

    await eventually(paid, timeout=LIVE_SECONDS, what="the payment on the card")

    tracking = "1Z999AA10123456784"  # a UPS number
    fulfillment_id = await fulfill(shop.saleor, catalog, order, tracking)

    async def shipped() -> dict[str, Any] | None:
        found = await card(shop, email)
        shipments = [e["node"] for e in (found or {}).get("shipments", {}).get("edges", [])]
        mine = [s for s in shipments if s["trackingNumber"] == tracking]
        line = order_on(found, saleor_id)
        return found if mine and line and line["status"] == "FULFILLED" else None

    found = await eventually(shipped, timeout=LIVE_SECONDS, what="the parcel on the card")
    (shipment,) = [e["node"] for e in found["shipments"]["edges"]]
    assert shipment["orderId"] == saleor_id

    await cancel(shop.saleor, catalog, saleor_id, fulfillment_id)

    async def cancelled() -> dict[str, Any] | None:
        found = await card(shop, email)
        line = order_on(found, saleor_id)
        return found if line and line["status"] == "CANCELED" else None

    found = await eventually(cancelled, timeout=LIVE_SECONDS, what="the cancellation on card")
    assert found["ordersCount"] == 0, "a cancelled order is not counted"


async def test_guest_checkout_completed(shop: Shop, catalog: Catalog) -> None:
    email = unique_email("guest")
    done = await checkout_and_pay(shop.saleor, catalog, email=email, token=None)
    order_id = done["order"]["id"]
    PLACED.add(order_id)

    async def converted() -> dict[str, Any] | None:
        found = await card(shop, email)
        if not found or not order_on(found, order_id):
            return None
        checkouts = [c for c in found["checkouts"] if c["saleorId"] == done["checkout_id"]]
        return found if checkouts and checkouts[0]["orderSaleorId"] == order_id else None

    found = await eventually(converted, timeout=LIVE_SECONDS, what="the guest's order on card")
    assert found["saleorUserId"] is None
    assert order_on(found, order_id)["isPaid"] is True  # type: ignore[index]


async def test_logged_in_checkout_completed(shop: Shop, catalog: Catalog) -> None:
    data = await shop.saleor.staff(
        "{ customers(first: 50, sortBy: {field: EMAIL, direction: DESC}) {"
        " edges { node { id email firstName lastName isActive isStaff } } } }"
    )
    shopper = next(
        e["node"]
        for e in data["customers"]["edges"]
        if e["node"]["isActive"] and not e["node"]["isStaff"]
    )
    token = await customer_token(shop.saleor, shopper["email"], POPULATEDB_PASSWORD)
    TOUCHED.add(shopper["email"].lower())
    done = await checkout_and_pay(shop.saleor, catalog, email=None, token=token)
    order_id = done["order"]["id"]
    PLACED.add(order_id)
    SHOPPER.update(shopper)
    assert done["order"]["user"]["id"] == shopper["id"]

    async def on_their_card() -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await shop.crm(CARD_BY_USER, {"id": shopper["id"]}))[
            "customer"
        ]
        return found if found and order_on(found, order_id) else None

    found = await eventually(on_their_card, timeout=LIVE_SECONDS, what="the shopper's order")
    assert found["email"] == shopper["email"]


async def test_an_order_address_does_not_rename_the_account(shop: Shop) -> None:
    """The logged-in shopper's order went to 'Ada Lovelace' (a gift): their card keeps the
    name of their Saleor account."""
    assert SHOPPER, "run with test_logged_in_checkout_completed"
    found = (await shop.crm(CARD_BY_USER, {"id": SHOPPER["id"]}))["customer"]
    assert (found["firstName"], found["lastName"]) == (
        SHOPPER["firstName"],
        SHOPPER["lastName"],
    )


async def test_live_figures_match_saleor(shop: Shop) -> None:
    """After all of the above, the touched customers' figures equal Saleor's, over the
    orders the CRM holds (the import of the older ones is test_install_import's) — which
    must include every order placed here."""
    assert TOUCHED, "run with the live tests above"
    async with shop.db.session() as session:
        held = set(
            await session.scalars(
                select(Order.saleor_id).where(Order.installation_id == shop.installation_id)
            )
        )
    assert PLACED <= held, f"orders placed here missing in the CRM: {PLACED - held}"
    expected = expected_figures([o for o in await saleor_orders(shop.saleor) if o["id"] in held])
    for email in sorted(TOUCHED):
        figures = expected.get(email)
        if figures is None:  # the deleted account had no orders
            continue
        found = await card(shop, email)
        assert found is not None, email
        assert found["ordersCount"] == figures.orders_count, email
        first, last = figures.first_order_at, figures.last_order_at
        assert found["firstOrderAt"] == (first.isoformat() if first else None), email
        assert found["lastOrderAt"] == (last.isoformat() if last else None), email
        assert spent_by_currency(found) == nonzero(figures.spent), email
