"""Money kept is Σ (charged − refunded) over every order, whatever its status (issue 15,
point 6): a cancelled order whose charge was never refunded still counts, by webhook and by
import alike; the cancelled order counts for nothing else."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.importer.figures import settle_stale
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile, ProfileTotal
from tests.api import ALL_PERMISSIONS, dashboard_headers, gql, staff_headers
from tests.conftest import RunningApp
from tests.simulator import FakeShop
from tests.test_import_batch import RESOURCES, differences, fold_listing, listed, new_installation
from tests.test_import_batch import state as shop_state

JACKET = [("Rain jacket", "JACKET-R", "Apparel", 1, 163.87)]  # + 5.00 shipping = 168.87


def cancelled_after_payment(shop: FakeShop) -> list[Any]:
    """Ann pays 168.87, the order is cancelled, the charge is never refunded; a second
    order is partly refunded and a third cancelled unpaid."""
    events = shop.create_customer("ann@example.com", first_name="Ann")
    ann = shop.user_id("ann@example.com")
    kept = shop.create_order(user_id=ann, lines=JACKET)
    events += kept
    events += shop.pay_order(kept[0].object_id)
    events += shop.cancel_order(kept[0].object_id)
    second = shop.create_order(user_id=ann, lines=[("Mug", "MUG-1", "Kitchen", 2, 12.5)])
    events += second
    events += shop.pay_order(second[0].object_id)  # 30.00
    events += shop.refund_order(second[0].object_id, amount=10.0)
    unpaid = shop.create_order(user_id=ann, lines=[("Tea", "TEA-1", "Food", 1, 8.0)])
    events += unpaid
    events += shop.cancel_order(unpaid[0].object_id)
    return events


async def _fold(db: Database, installation_id: int, events: list[Any]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)


async def _ann(db: Database, installation_id: int) -> tuple[Profile, list[ProfileTotal]]:
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.email == "ann@example.com"
            )
        )
        assert profile is not None
        totals = list(
            await session.scalars(select(ProfileTotal).where(ProfileTotal.profile_id == profile.id))
        )
    return profile, totals


async def test_a_cancelled_charge_never_refunded_is_money_kept(db: Database) -> None:
    installation_id = await new_installation(db, "cancelled-kept")
    await _fold(db, installation_id, cancelled_after_payment(FakeShop()))

    ann, totals = await _ann(db, installation_id)
    assert ann.total_spent == Decimal("188.87")  # 168.87 kept + (30.00 − 10.00)
    assert ann.currency == "USD"
    assert ann.orders_count == 1  # the cancelled ones count for nothing else
    assert ann.paid_orders_count == 1
    assert ann.cancelled_orders_count == 2
    assert ann.refunded_orders_count == 1
    assert ann.average_order_value == Decimal("30.00")  # the paid active order's total
    assert [(t.currency, t.orders_count, t.total_spent) for t in totals] == [
        ("USD", 1, Decimal("188.87"))
    ]


async def test_only_a_cancelled_paid_order_still_shows_what_was_kept(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop()
    events = shop.create_order(email="bo@example.com", lines=JACKET)
    events += shop.pay_order(events[0].object_id)
    events += shop.cancel_order(events[0].object_id)
    await _fold(db, installation_id, events)

    answer = await gql(
        app_server,
        '{ customer(email: "bo@example.com") { ordersCount totalSpent { amount currency } } }',
        headers=staff_headers(saleor),
    )
    customer = answer.data["customer"]
    assert customer["ordersCount"] == 0
    assert customer["totalSpent"]["currency"] == "USD"
    assert Decimal(customer["totalSpent"]["amount"]) == Decimal("168.87")


REPORTS = """query($p: AnalyticsPeriod!) { analytics(period: $p) {
  revenueBySource { source currency orders customers revenue { amount currency } }
  ltvBySource { currency customers revenue { amount } } } }"""


async def test_the_reports_and_the_overview_count_the_money_the_card_counts(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    """The analytics reports and the dashboard's overview add up the same money kept as
    Ann's total spent (the cancelled 168.87 included) and count one order, as her card."""
    await _fold(db, installation_id, cancelled_after_payment(FakeShop()))
    period = {"from": "2026-01-01", "to": "2026-12-31"}  # the simulator's clock: Nov 2026
    answer = await gql(app_server, REPORTS, {"p": period}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    (source,) = answer.data["analytics"]["revenueBySource"]
    assert (source["currency"], source["orders"], source["customers"]) == ("USD", 1, 1)
    assert Decimal(source["revenue"]["amount"]) == Decimal("188.87")
    (ltv,) = answer.data["analytics"]["ltvBySource"]
    assert (ltv["currency"], ltv["customers"]) == ("USD", 1)
    assert Decimal(ltv["revenue"]["amount"]) == Decimal("188.87")

    headers = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        response = await client.post(
            "/dashboard/fragments/overview", json={"params": {"months": "24"}}, headers=headers
        )
    assert response.status_code == 200, response.text
    kpis = dict(re.findall(r'<dd data-kpi="(orders|revenue)">(.*?)</dd>', response.text, re.S))
    assert re.findall(r'value="([^"]+)"', kpis["orders"]) == ["1"]
    shown = re.findall(r'value="([^"]+)" data-currency="([A-Z]{3})"', kpis["revenue"])
    assert [(Decimal(value), currency) for value, currency in shown] == [(Decimal("188.87"), "USD")]


async def test_the_import_settles_cancelled_charges_as_the_webhooks_do(db: Database) -> None:
    shop = FakeShop()
    events = cancelled_after_payment(shop)
    webhooks = await new_installation(db, "cancelled-webhooks")
    imported = await new_installation(db, "cancelled-import")
    await _fold(db, webhooks, events)
    listing = {field: listed(shop, field) for field in RESOURCES}
    await fold_listing(db, imported, listing, batch=True, defer_figures=True)
    async with unit_of_work(db) as session:
        while await settle_stale(session, imported, 100):
            pass

    assert (await _ann(db, imported))[0].total_spent == Decimal("188.87")
    assert (
        differences(
            _figures(await shop_state(db, webhooks)), _figures(await shop_state(db, imported))
        )
        == []
    )


FIGURES: tuple[str, ...] = ("orders_count", "paid_orders_count", "cancelled_orders_count")
FIGURES += ("refunded_orders_count", "currency", "total_spent", "average_order_value")


def _figures(rows: dict[str, Any]) -> dict[str, Any]:
    """The profiles' figures and totals (the webhooks also score and predict)."""
    profiles = {key: {name: row[name] for name in FIGURES} for key, row in rows["profiles"].items()}
    return {"profiles": profiles, "totals": rows["totals"]}
