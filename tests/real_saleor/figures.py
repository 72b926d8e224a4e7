"""A customer's figures as Saleor's own API states them, to hold the CRM's against.

The definitions are the CRM's (plugin/profiles/aggregates.py), applied to what Saleor
answers, not to what the CRM stored: a placed order is any but a draft or an expired one;
`ordersCount` and the first/last order count placed orders that are not cancelled; the
money kept is Σ (charged − refunded) per currency over placed orders whatever their status
(a cancelled order whose charge was never refunded is money the shop kept).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.real_saleor.saleor_api import SaleorApi

NOT_PLACED = ("DRAFT", "EXPIRED")
# `origin` is left out: some demo orders have none, and Saleor then errors on the whole
# page (issue 15 point 2). None of these fields fails on populatedb's data.
ORDERS_PAGE = """
query($after: String) {
  orders(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      id number created status userEmail user { id email }
      totalCharged { amount currency } totalRefunded { amount currency }
    } }
  }
}"""


@dataclass
class Expected:
    orders_count: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    spent: dict[str, Decimal] = field(default_factory=dict)


async def saleor_orders(api: SaleorApi) -> list[dict[str, Any]]:
    """Every order Saleor lists to staff (drafts are not in `orders`)."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = (await api.staff(ORDERS_PAGE, {"after": after}))["orders"]
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def buyer_email(order: dict[str, Any]) -> str:
    email = order["userEmail"] or (order["user"] or {}).get("email")
    assert email, f"order {order['number']} names no buyer"
    return str(email).lower()


def expected_figures(orders: list[dict[str, Any]]) -> dict[str, Expected]:
    """Per buyer e-mail, the figures the definitions give for these orders."""
    result: dict[str, Expected] = defaultdict(Expected)
    for order in orders:
        if order["status"] in NOT_PLACED:
            continue
        figures = result[buyer_email(order)]
        charged, refunded = order["totalCharged"], order["totalRefunded"]
        kept = Decimal(str(charged["amount"])) - Decimal(str(refunded["amount"]))
        currency = charged["currency"]
        figures.spent[currency] = figures.spent.get(currency, Decimal(0)) + max(kept, Decimal(0))
        if order["status"] == "CANCELED":
            continue
        figures.orders_count += 1
        placed = datetime.fromisoformat(order["created"])
        if figures.first_order_at is None or placed < figures.first_order_at:
            figures.first_order_at = placed
        if figures.last_order_at is None or placed > figures.last_order_at:
            figures.last_order_at = placed
    return dict(result)
