"""Whose is a checkout or an order when its Saleor user and its e-mail differ (issue 15,
point 4)? The buyer's — the e-mail's: a staff member's phone orders and a customer's gift
land on the people whose e-mails are on them, the user is recorded as who placed them, a
registered user's e-mail is never overwritten, nobody becomes unfindable and two Saleor
users are never merged. The webhook folds and the import decide alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from plugin.commerce.models import Checkout, Order
from plugin.db.engine import Database
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles import identity
from plugin.profiles.models import Identity, Profile
from plugin.timeline.models import TimelineEntry
from tests.api import gql, staff_headers
from tests.conftest import RunningApp
from tests.importing import LINES
from tests.simulator import FakeShop
from tests.simulator.shop import Event
from tests.test_import_batch import (
    RESOURCES,
    differences,
    fold_listing,
    listed,
    new_installation,
    state,
)

STAFF = "anna@shop.example"


async def _fold(db: Database, installation_id: int, events: list[Event]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)


async def _person(db: Database, installation_id: int, email: str) -> dict[str, Any]:
    """The profile holding `email`: its row, e-mails, orders, checkouts and timeline."""
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile)
            .join(Identity, Identity.profile_id == Profile.id)
            .where(Identity.installation_id == installation_id, Identity.value == email)
        )
        assert profile is not None, email

        async def of(column: Any, model: Any) -> list[Any]:
            return list(await session.scalars(select(column).where(model.profile_id == profile.id)))

        return {
            "profile": profile,
            "emails": sorted(await of(Identity.value, Identity)),
            "orders": await of(Order.user_email, Order),
            "checkouts": await of(Checkout.email, Checkout),
            "timeline": await of(TimelineEntry.summary, TimelineEntry),
        }


async def _accounts(db: Database, installation_id: int) -> list[str | None]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(Profile.saleor_user_id).where(Profile.installation_id == installation_id)
            )
        )


def phone_orders(shop: FakeShop) -> list[Event]:
    """A staff member, logged in, makes a checkout for Kim (first under her own e-mail, as
    Saleor fills it in, then Kim's) and one for Lee, and completes both."""
    staff = shop.create_staff(STAFF, first_name="Anna")
    events = shop.create_checkout(user_id=staff, lines=LINES, phone="+12025550181")
    kim_cart = events[0].object_id
    events += shop.update_checkout(kim_cart, email="kim@example.com")
    events += shop.complete_checkout(kim_cart)
    lee = shop.create_checkout(user_id=staff, email="lee@example.com", lines=LINES[:1])
    events += lee + shop.complete_checkout(lee[0].object_id)
    return events


async def test_staff_phone_orders_land_on_each_buyer(db: Database) -> None:
    shop = FakeShop()
    installation_id = await new_installation(db, "phone-orders")
    await _fold(db, installation_id, phone_orders(shop))

    kim = await _person(db, installation_id, "kim@example.com")
    lee = await _person(db, installation_id, "lee@example.com")
    assert kim["profile"].id != lee["profile"].id
    assert (kim["profile"].email, kim["orders"], kim["checkouts"]) == (
        "kim@example.com",
        ["kim@example.com"],
        ["kim@example.com"],
    )
    assert (lee["profile"].email, lee["orders"], lee["checkouts"]) == (
        "lee@example.com",
        ["lee@example.com"],
        ["lee@example.com"],
    )
    assert kim["profile"].orders_count == lee["profile"].orders_count == 1
    # The staff account is nobody's customer key; it is recorded as who placed them.
    staff_id = shop.user_id(STAFF)
    assert staff_id not in await _accounts(db, installation_id)
    placed = [s for s in kim["timeline"] if "placed by staff member anna@shop.example" in s]
    assert len(placed) >= 2  # the order and the checkout events
    async with db.session() as session:
        order = await session.scalar(select(Order).where(Order.user_email == "kim@example.com"))
    assert order is not None
    assert order.saleor_user_id == staff_id
    # The moment the cart still showed the staff member's own e-mail left nothing on her.
    anna = await _person(db, installation_id, STAFF)
    assert (anna["orders"], anna["checkouts"], anna["profile"].orders_count) == ([], [], 0)


def gift(shop: FakeShop) -> tuple[list[Event], str]:
    """Ann, registered, checks out a gift for Gus under his e-mail and pays."""
    events = shop.create_customer("ann@example.com", first_name="Ann", last_name="Lee")
    ann = shop.user_id("ann@example.com")
    cart = shop.create_checkout(user_id=ann, email="gus@example.com", lines=LINES)
    events += cart + shop.pay_checkout(cart[0].object_id)
    events += shop.complete_checkout(cart[0].object_id)
    return events, ann


async def test_a_gift_goes_to_its_recipient_and_leaves_the_giver_alone(db: Database) -> None:
    shop = FakeShop()
    events, ann_id = gift(shop)
    installation_id = await new_installation(db, "gift")
    await _fold(db, installation_id, events)

    ann = await _person(db, installation_id, "ann@example.com")
    gus = await _person(db, installation_id, "gus@example.com")
    assert ann["profile"].id != gus["profile"].id
    assert ann["profile"].email == "ann@example.com"  # never overwritten by the gift
    assert ann["profile"].saleor_user_id == ann_id
    assert (ann["emails"], ann["orders"], ann["checkouts"]) == (
        sorted([ann_id, "ann@example.com"]),
        [],
        [],
    )
    assert ann["profile"].orders_count == 0
    assert gus["profile"].saleor_user_id is None
    assert (gus["orders"], gus["checkouts"]) == (["gus@example.com"], ["gus@example.com"])
    assert gus["profile"].paid_orders_count == 1
    assert any("placed by account ann@example.com" in s for s in gus["timeline"])


async def test_an_order_under_the_users_own_email_is_theirs(db: Database) -> None:
    shop = FakeShop()
    events = shop.create_customer("bo@example.com", first_name="Bo")
    bo_id = shop.user_id("bo@example.com")
    events += shop.create_order(user_id=bo_id, lines=LINES)  # userEmail = user.email
    events += shop.create_order(user_id=bo_id, email="BO@example.com", lines=LINES)
    installation_id = await new_installation(db, "own-email")
    await _fold(db, installation_id, events)

    bo = await _person(db, installation_id, "bo@example.com")
    assert bo["profile"].saleor_user_id == bo_id
    assert bo["orders"] == ["bo@example.com", "bo@example.com"]
    assert not any("placed by" in s for s in bo["timeline"])
    assert await _accounts(db, installation_id) == [bo_id]


async def test_an_order_address_names_a_guest_but_never_renames_an_account(db: Database) -> None:
    """A registered customer ships to someone else (found against the real Saleor): the
    address's name is the recipient's, not the account's, so the card keeps the account's
    name. A guest's own purchase is what names the guest."""
    shop = FakeShop()
    events = shop.create_customer("ann@example.com", first_name="Ann", last_name="Lee")
    ann_id = shop.user_id("ann@example.com")
    to_ada = shop.address(first_name="Ada", last_name="Lovelace")
    events += shop.create_order(user_id=ann_id, lines=LINES, shipping_address=to_ada)
    to_guest = shop.address(first_name="Gil", last_name="Ray")
    events += shop.create_order(email="gil@example.com", lines=LINES, shipping_address=to_guest)
    installation_id = await new_installation(db, "address-names")
    await _fold(db, installation_id, events)

    ann = (await _person(db, installation_id, "ann@example.com"))["profile"]
    assert (ann.first_name, ann.last_name, ann.orders_count) == ("Ann", "Lee", 1)
    gil = (await _person(db, installation_id, "gil@example.com"))["profile"]
    assert (gil.first_name, gil.last_name) == ("Gil", "Ray")


async def test_a_guest_who_registers_later_stays_one_person(db: Database) -> None:
    shop = FakeShop()
    events = shop.create_order(email="cy@example.com", lines=LINES, paid=True)
    events += shop.create_customer("cy@example.com", first_name="Cy")
    cy_id = shop.user_id("cy@example.com")
    events += shop.create_order(user_id=cy_id, lines=LINES)
    installation_id = await new_installation(db, "guest-registers")
    await _fold(db, installation_id, events)

    cy = await _person(db, installation_id, "cy@example.com")
    assert cy["profile"].saleor_user_id == cy_id
    assert cy["profile"].orders_count == 2
    assert await _accounts(db, installation_id) == [cy_id]


async def test_a_changed_account_email_keeps_history_and_both_addresses_find_them(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop()
    events = shop.create_customer("dee@example.com", first_name="Dee")
    dee = shop.user_id("dee@example.com")
    placed = shop.create_order(user_id=dee, lines=LINES)
    cart = shop.create_checkout(user_id=dee, lines=LINES)  # under the old e-mail
    events += placed + cart + shop.update_customer(dee, email="dee.new@example.com")
    # Saleor now sends the order and the cart with the account's new e-mail next to the
    # old one they were made with; the cart's snapshot is newer than the change.
    events += shop.update_order(placed[0].object_id, city="Boston")
    events += shop.create_order(user_id=dee, lines=LINES)
    events += shop.update_checkout(cart[0].object_id, lines=LINES[:1])
    await _fold(db, installation_id, events)

    person = await _person(db, installation_id, "dee@example.com")
    assert person["profile"].email == "dee.new@example.com"  # the account's own data wins
    assert person["profile"].orders_count == 2
    assert sorted(person["orders"]) == ["dee.new@example.com", "dee@example.com"]
    assert person["checkouts"] == ["dee@example.com"]
    for email in ("dee@example.com", "DEE.new@example.com"):
        answer = await gql(
            app_server,
            "query($e: String!) { customer(email: $e) { saleorUserId ordersCount } }",
            {"e": email},
            staff_headers(saleor),
        )
        assert answer.data["customer"] == {"saleorUserId": dee, "ordersCount": 2}, email


async def test_every_email_that_bought_is_found_through_the_api(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop()
    await _fold(db, installation_id, phone_orders(shop))
    for email in ("kim@example.com", "lee@example.com"):
        answer = await gql(
            app_server,
            "query($e: String!) { customer(email: $e) { email ordersCount saleorUserId "
            "orders(first: 5) { nodes { email saleorUserId } } } }",
            {"e": email},
            staff_headers(saleor),
        )
        assert answer.data["customer"] == {
            "email": email,
            "ordersCount": 1,
            "saleorUserId": None,
            # The order keeps who placed it.
            "orders": {"nodes": [{"email": email, "saleorUserId": shop.user_id(STAFF)}]},
        }


async def test_the_import_decides_as_the_webhooks_do(db: Database) -> None:
    """Staff phone orders, a gift and ordinary orders, listed as Saleor lists them (the
    staff member among the customers, having orders): folded object by object through the
    webhook code and page by page, the same rows."""
    shop = FakeShop()
    phone_orders(shop)
    gift(shop)
    shop.create_customer("bo@example.com")
    shop.create_order(user_id=shop.user_id("bo@example.com"), lines=LINES)
    listing = {field: listed(shop, field) for field in RESOURCES}
    assert any(user["email"] == STAFF for user in listing["customers"])
    webhook = await new_installation(db, "identity-webhook")
    batch = await new_installation(db, "identity-batch")
    await fold_listing(db, webhook, listing, batch=False)
    await fold_listing(db, batch, listing, batch=True)

    by_webhook, by_batch = await state(db, webhook), await state(db, batch)
    assert differences(by_webhook, by_batch) == []
    owners = {order["user_email"]: order["profile_id"] for order in by_batch["orders"].values()}
    assert all(f"email:{email}" in owners[email] for email in owners)  # each the e-mail's
    assert not any(f"saleor_user:{shop.user_id(STAFF)}" in key for key in owners.values())
    gus = next(k for k in by_batch["profiles"] if "email:gus@example.com" in k)
    assert not any(part.startswith("saleor_user:") for part in gus)


def test_the_rule_itself() -> None:
    """`placed_for_someone_else` in each case (the owners: profiles holding the keys)."""
    Claims, placed_for_someone_else = identity.Claims, identity.placed_for_someone_else
    own, other = object(), object()
    user: dict[str, Any] = {"saleor_user_id": "U", "account_email": "u@x.io"}
    assert not placed_for_someone_else(Claims(email="u@x.io", **user), own, own)
    assert not placed_for_someone_else(Claims(email="old@x.io", **user), own, own)  # held
    assert placed_for_someone_else(Claims(email="g@x.io", **user), own, None)  # a gift
    assert placed_for_someone_else(Claims(email="g@x.io", **user), own, other)
    assert placed_for_someone_else(Claims(email="u@x.io", staff=True, **user), own, own)
    assert not placed_for_someone_else(Claims(email="g@x.io"), None, other)  # a guest
    staff = Claims(email="kim@x.io", phone="+12025550181", staff=True, **user)
    assert identity.buyer_claims(staff, own, None) == Claims(email="kim@x.io", phone="+12025550181")


async def test_the_import_makes_no_customer_of_a_staff_account(db: Database) -> None:
    """Saleor lists a staff member with phone orders among its customers; the import must
    not make them one (found against the real Saleor: a re-import added a customer)."""
    shop = FakeShop()
    phone_orders(shop)
    listing = {field: listed(shop, field) for field in RESOURCES}
    assert any(user["email"] == STAFF for user in listing["customers"])
    for batch in (False, True):
        installation_id = await new_installation(db, f"staff-listed-{batch}")
        await fold_listing(db, installation_id, listing, batch=batch)
        async with db.session() as session:
            emails = set(
                await session.scalars(
                    select(Profile.email).where(Profile.installation_id == installation_id)
                )
            )
        assert emails == {"kim@example.com", "lee@example.com"}, batch
        assert await _accounts(db, installation_id) == [None, None], batch
