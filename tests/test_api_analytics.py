"""Analytics over HTTP: every report of `analytics(period, channel, source)`, ad costs with
typed errors, and a shop's reports never counting another shop's orders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from plugin.analytics import rollups
from plugin.api.ids import to_global_id
from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.membership import refresh_installation
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp, new_installation

REPORTS = """
query($p: AnalyticsPeriod!, $channel: String, $source: String) {
  analytics(period: $p, channel: $channel, source: $source) {
    funnel { steps { key count conversion dropOff ofStarted notMeasured } }
    cohorts { month size active retention }
    behaviour { customers repeatCustomers repeatRate daysBetweenOrders churnDays churned
      churnRate averageChecks { currency firstOrder { amount currency } firstOrderCount } }
    churnByCohort { month customers churned churnRate }
    revenueBySource { source medium campaign orders customers revenue { amount currency } }
    campaigns: revenueBySource(level: CAMPAIGN) { source campaign orders }
    ltvBySource { source customers revenue { amount currency } ltv { amount currency } }
    revenueBySegment { slug name members currencies { currency customers periodOrders
      revenue { amount } periodRevenue { amount } ltv { amount } } }
    rfmRevenue { currency cells { recency frequency name customers revenue { amount } } }
    roi { source currency revenue { amount } cost { amount } roi }
    adCosts { id source amount { amount currency } dayFrom dayTo }
  }
}
"""
ADD = """
mutation($input: AdCostInput!) {
  adCostAdd(input: $input) { id source medium campaign dayFrom dayTo amount { amount currency } }
}
"""
DELETE = "mutation($id: ID!) { adCostDelete(id: $id) }"


def period(days: int = 30) -> dict[str, str]:
    today = utcnow().date()
    return {"from": (today - timedelta(days=days)).isoformat(), "to": today.isoformat()}


async def shop(db: Database, installation_id: int) -> None:
    """Two buyers (3 and 1 paid orders, source `google` for the first), a browser."""
    ann = await seed_customer(db, installation_id, "ann@example.com", orders=3, checkouts=1)
    bob = await seed_customer(db, installation_id, "bob@example.com", orders=1)
    await seed_customer(db, installation_id, "cat@example.com", checkouts=1)
    async with unit_of_work(db) as session:
        await session.execute(
            update(Order)
            .where(Order.installation_id == installation_id)
            .values(total_charged=Order.total_gross)
        )
        await session.execute(
            update(Order).where(Order.profile_id == ann).values(utm_source="google")
        )
        await session.execute(update(Profile).where(Profile.id == ann).values(utm_source="google"))
        await session.execute(update(Profile).where(Profile.id == bob).values(utm_source=None))
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)
        # seeded behind the folds' back: roll the reports' tables up again
        await rollups.rebuild_installation(session, installation_id)


async def test_reports(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await shop(db, installation_id)
    answer = await gql(app_server, REPORTS, {"p": period()}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    report = answer.data["analytics"]

    steps = {s["key"]: s for s in report["funnel"]["steps"]}
    assert list(steps) == ["started", "contact", "ordered", "paid", "fulfilled", "delivered"]
    assert steps["started"]["count"] == 2  # the two checkouts seeded 3 hours ago
    assert steps["contact"]["count"] == 2
    assert steps["delivered"]["count"] is None
    assert steps["delivered"]["notMeasured"]

    assert sum(c["size"] for c in report["cohorts"]) == 2
    assert all(c["retention"][0] == 1.0 for c in report["cohorts"])

    behaviour = report["behaviour"]
    assert behaviour["customers"] == 2
    assert behaviour["repeatCustomers"] == 1
    assert behaviour["repeatRate"] == 0.5
    assert behaviour["averageChecks"][0]["currency"] == "EUR"
    assert behaviour["averageChecks"][0]["firstOrder"] == {"amount": "25.00", "currency": "EUR"}
    assert sum(c["customers"] for c in report["churnByCohort"]) == 2

    by_source = {r["source"]: r for r in report["revenueBySource"]}
    assert by_source["google"]["orders"] == 3
    assert by_source["google"]["revenue"]["currency"] == "EUR"
    assert float(by_source["google"]["revenue"]["amount"]) == 75
    assert by_source[None]["orders"] == 1
    assert {r["source"] for r in report["campaigns"]} == {"google", None}

    ltv = {r["source"]: r for r in report["ltvBySource"]}
    assert float(ltv["google"]["ltv"]["amount"]) == 75
    assert float(ltv[None]["ltv"]["amount"]) == 25

    segments = {s["slug"]: s for s in report["revenueBySegment"]}
    assert segments, report["revenueBySegment"]
    assert all(isinstance(s["members"], int) for s in segments.values())

    assert [r["currency"] for r in report["rfmRevenue"]] in ([], ["EUR"])
    for grid in report["rfmRevenue"]:
        assert len(grid["cells"]) == 25

    roi = {r["source"]: r for r in report["roi"]}
    assert roi["google"]["roi"] is None  # nothing spent yet
    assert report["adCosts"] == []

    # Filters: one source.
    google = await gql(
        app_server, REPORTS, {"p": period(), "source": "google"}, staff_headers(saleor)
    )
    assert "errors" not in google.body, google.body
    assert [r["source"] for r in google.data["analytics"]["revenueBySource"]] == ["google"]
    assert google.data["analytics"]["behaviour"]["customers"] == 1


async def test_ad_costs_and_roi(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await shop(db, installation_id)
    headers = staff_headers(saleor)
    today = utcnow().date()
    entry = {
        "source": "google",
        "campaign": " winter ",
        "dayFrom": (today - timedelta(days=9)).isoformat(),
        "dayTo": today.isoformat(),
        "amount": "50",
        "currency": "eur",
    }
    added = await gql(app_server, ADD, {"input": entry}, headers)
    assert "errors" not in added.body, added.body
    cost = added.data["adCostAdd"]
    assert cost["campaign"] == "winter"
    assert cost["amount"] == {"amount": "50", "currency": "EUR"}

    answer = await gql(app_server, REPORTS, {"p": period()}, headers)
    report = answer.data["analytics"]
    assert [c["id"] for c in report["adCosts"]] == [cost["id"]]
    roi = {r["source"]: r for r in report["roi"]}["google"]
    assert float(roi["cost"]["amount"]) == 50
    assert float(roi["roi"]) == 0.5  # (75 − 50) ÷ 50

    for bad, field in (
        ({"amount": "-1"}, "amount"),
        ({"currency": "euro"}, "currency"),
        ({"dayFrom": today.isoformat(), "dayTo": (today - timedelta(days=1)).isoformat()}, "day"),
        ({"source": "  "}, "source"),
    ):
        refused = await gql(app_server, ADD, {"input": {**entry, **bad}}, headers)
        assert refused.codes == ["INVALID_INPUT"], (bad, refused.body)
        assert field in refused.body["errors"][0]["message"]

    deleted = await gql(app_server, DELETE, {"id": cost["id"]}, headers)
    assert deleted.data == {"adCostDelete": cost["id"]}
    again = await gql(app_server, DELETE, {"id": cost["id"]}, headers)
    assert again.codes == ["NOT_FOUND"]
    wrong_kind = await gql(app_server, DELETE, {"id": to_global_id("Customer", 1)}, headers)
    assert wrong_kind.codes == ["INVALID_INPUT"]


async def test_invalid_periods(app_server: RunningApp, saleor: Any, installation_id: int) -> None:
    query = "query($p: AnalyticsPeriod!) { analytics(period: $p) { funnel { steps { key } } } }"
    today = utcnow().date()
    for bad in (
        {"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()},
        {"from": "2000-01-01", "to": "2030-01-01"},
    ):
        answer = await gql(app_server, query, {"p": bad}, staff_headers(saleor))
        assert answer.codes == ["INVALID_INPUT"], answer.body
    garbage = await gql(app_server, query, {"p": {"from": "yesterday"}}, staff_headers(saleor))
    assert garbage.status in (200, 400)
    assert set(garbage.codes) == {"INVALID_INPUT"}, garbage.body


async def test_reports_of_one_shop_only(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    other = await new_installation(db, app_id="QXBwOjk5")
    await shop(db, other)  # another shop's buyers and orders
    await seed_customer(db, installation_id, "mine@example.com", orders=2)
    answer = await gql(app_server, REPORTS, {"p": period()}, staff_headers(saleor))
    assert "errors" not in answer.body, answer.body
    report = answer.data["analytics"]
    assert report["behaviour"]["customers"] == 1
    assert sum(r["orders"] for r in report["revenueBySource"]) == 2
    assert report["funnel"]["steps"][0]["count"] == 0
