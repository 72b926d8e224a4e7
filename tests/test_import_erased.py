"""A person erased (account deleted in Saleor) stays erased when webhooks about them arrive
late: an order, a cart or a shipment naming their account or e-mail folds nothing."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from plugin.commerce.models import Checkout, Order
from plugin.db.engine import Database
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Identity, Profile
from plugin.timeline.models import TimelineEntry
from tests.importing import LINES
from tests.simulator import FakeShop
from tests.simulator.shop import Event
from tests.test_import_batch import new_installation


async def fold(db: Database, installation_id: int, events: list[Event]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)


async def rows_naming(db: Database, installation_id: int, email: str) -> int:
    async with db.session() as session:
        profiles = await session.scalar(
            select(func.count()).where(
                Profile.installation_id == installation_id, func.lower(Profile.email) == email
            )
        )
        identities = await session.scalar(
            select(func.count()).where(
                Identity.installation_id == installation_id, func.lower(Identity.value) == email
            )
        )
        orders = await session.scalar(
            select(func.count()).where(
                Order.installation_id == installation_id, func.lower(Order.user_email) == email
            )
        )
        carts = await session.scalar(
            select(func.count()).where(
                Checkout.installation_id == installation_id, func.lower(Checkout.email) == email
            )
        )
        return int(profiles or 0) + int(identities or 0) + int(orders or 0) + int(carts or 0)


async def test_order_and_cart_webhooks_after_the_deletion_fold_nothing(db: Database) -> None:
    shop = FakeShop()
    events = shop.create_customer("gone@example.com", first_name="Gone")
    user_id = shop.user_id("gone@example.com")
    events += shop.create_order(user_id=user_id, lines=LINES)
    installation_id = await new_installation(db, "erased-webhooks")
    await fold(db, installation_id, events + shop.delete_customer(user_id))
    assert await rows_naming(db, installation_id, "gone@example.com") == 0

    # Late deliveries: a guest order and a cart with the address (any case), a paid
    # order of the deleted account, and an order of someone else.
    late = shop.create_order(email="Gone@Example.com", lines=LINES)
    late += shop.create_checkout(email="GONE@example.com", lines=LINES)
    account_order = shop.create_order(email="other-address@example.com", lines=LINES)[0]
    account_order.payload["order"]["user"] = {"id": user_id, "email": "other-address@example.com"}
    late.append(account_order)
    late += shop.create_order(email="stays@example.com", lines=LINES)
    await fold(db, installation_id, late)

    assert await rows_naming(db, installation_id, "gone@example.com") == 0
    assert await rows_naming(db, installation_id, "other-address@example.com") == 0
    assert await rows_naming(db, installation_id, "stays@example.com") == 3  # profile, id, order
    async with db.session() as session:
        entries = await session.scalar(
            select(func.count()).where(
                TimelineEntry.installation_id == installation_id,
                or_(
                    TimelineEntry.kind == "order_created", TimelineEntry.kind == "checkout_created"
                ),
            )
        )
    # The order placed before the deletion (kept anonymous) and the other person's.
    assert entries == 2
