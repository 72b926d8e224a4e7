"""A customer who paid in several currencies (issue 15, point 5): the API gives every
currency's money kept and average check, the card and the widgets show each one, and the
overview's source rows say their currency."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx

from plugin.db.engine import Database
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from tests.api import ALL_PERMISSIONS, dashboard_headers, gql, staff_headers
from tests.conftest import RunningApp
from tests.simulator import FakeShop
from tests.simulator.shop import Event

MONEY_QUERY = """query($e: String!) { customer(email: $e) {
  id saleorUserId totalSpent { amount currency }
  spentByCurrency { amount currency } averageCheckByCurrency { amount currency } } }"""


def paid_in_two_currencies(shop: FakeShop) -> tuple[list[Event], str, str]:
    """Ann: two paid PLN orders (3,163.87 in all) and one paid USD order (17.00); the PLN
    ones in the PLN channel. Returns the events, her user id and the USD order's id."""
    events = shop.create_customer("ann@example.com", first_name="Ann", last_name="Nowak")
    ann = shop.user_id("ann@example.com")
    shop.currency, shop.channel_slug = "PLN", "channel-pln"
    for price in (3000.0, 163.87):
        placed = shop.create_order(
            user_id=ann, lines=[("Sofa", "SOFA-1", "Home", 1, price)], shipping=0.0
        )
        events += placed + shop.pay_order(placed[0].object_id)
    shop.currency, shop.channel_slug = "USD", "default-channel"
    placed = shop.create_order(
        user_id=ann, lines=[("Mug", "MUG-1", "Kitchen", 1, 17.0)], shipping=0
    )
    events += placed + shop.pay_order(placed[0].object_id)
    # A guest buyer without a source in each currency: two "direct" rows in the overview.
    guest = shop.create_order(
        email="guest@example.com", lines=[("Tea", "TEA-1", "Food", 1, 4.0)], shipping=0
    )
    events += guest + shop.pay_order(guest[0].object_id)
    return events, ann, placed[0].object_id


async def _fold(db: Database, installation_id: int, events: list[Event]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await fold_payload(session, installation_id, event.event_type, event.payload)


def _amounts(items: list[dict[str, Any]]) -> list[tuple[str, Decimal]]:
    return [(m["currency"], Decimal(m["amount"])) for m in items]


async def _fragment(app: RunningApp, name: str, headers: dict[str, str], **params: str) -> str:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as client:
        response = await client.post(
            f"/dashboard/fragments/{name}", json={"params": params}, headers=headers
        )
    assert response.status_code == 200, response.text
    return response.text


def _figure(html: str, name: str, element: str = "dd") -> list[tuple[str, Decimal]]:
    """The amounts (currency, value) shown in one `data-figure` of a card (of a list)."""
    found = re.search(rf'data-figure="{name}">(.*?)</{element}>', html, re.DOTALL)
    assert found is not None, html
    return [
        (currency, Decimal(value))
        for value, currency in re.findall(
            r'<data class="money" value="([^"]+)" data-currency="([A-Z]{3})"', found.group(1)
        )
    ]


async def test_every_currency_in_the_api(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    events, _, _ = paid_in_two_currencies(FakeShop())
    await _fold(db, installation_id, events)
    answer = await gql(app_server, MONEY_QUERY, {"e": "ann@example.com"}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    ann = answer.data["customer"]
    assert _amounts(ann["spentByCurrency"]) == [
        ("PLN", Decimal("3163.87")),  # the main currency (most orders) first
        ("USD", Decimal("17.00")),
    ]
    assert _amounts(ann["averageCheckByCurrency"]) == [
        ("PLN", Decimal("1581.94")),  # 3,163.87 ÷ 2, rounded to the cent
        ("USD", Decimal("17.00")),
    ]
    assert _amounts([ann["totalSpent"]]) == [("PLN", Decimal("3163.87"))]


async def test_card_and_widgets_show_every_currency(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    events, ann, usd_order = paid_in_two_currencies(FakeShop())
    await _fold(db, installation_id, events)
    found = await gql(app_server, MONEY_QUERY, {"e": "ann@example.com"}, staff_headers(saleor))
    crm_id = found.data["customer"]["id"]
    headers = dashboard_headers(
        saleor, user_permissions=["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"]
    )
    spent = [("PLN", Decimal("3163.87")), ("USD", Decimal("17.00"))]
    average = [("PLN", Decimal("1581.94")), ("USD", Decimal("17.00"))]

    card = await _fragment(app_server, "customer_card", headers, crmId=crm_id)
    assert _figure(card, "spent") == spent
    assert _figure(card, "aov") == average
    widget = await _fragment(app_server, "customer_widget", headers, customerId=ann)
    assert _figure(widget, "spent") == spent
    assert _figure(widget, "aov") == average
    order = await _fragment(app_server, "order_widget", headers, orderId=usd_order)
    assert _figure(order, "spent") == spent
    listed = await _fragment(app_server, "customers", headers, search="ann@")
    assert _figure(listed, "spent", "td") == spent


async def test_overview_source_rows_say_their_currency(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    events, _, _ = paid_in_two_currencies(FakeShop())
    await _fold(db, installation_id, events)
    rows = await gql(
        app_server,
        "query($p: AnalyticsPeriod!) { analytics(period: $p) { "
        "revenueBySource { source currency orders revenue { amount currency } } } }",
        {"p": {"from": "2026-01-01", "to": "2026-12-31"}},
        staff_headers(saleor),
    )
    assert "errors" not in rows.body, rows.body
    direct = [
        (r["currency"], r["orders"], Decimal(r["revenue"]["amount"]))
        for r in rows.data["analytics"]["revenueBySource"]
    ]
    assert direct == [("PLN", 2, Decimal("3163.87")), ("USD", 2, Decimal("21.00"))]

    html = await _fragment(
        app_server, "overview", dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    )
    shown = re.findall(
        r'<tr data-source="" data-currency="([A-Z]{3})"><td>direct / unknown</td>'
        r"<td>([A-Z]{3})</td>",
        html,
    )
    assert shown == [("PLN", "PLN"), ("USD", "USD")]
