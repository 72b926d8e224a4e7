"""The app page's overview: KPIs, funnel, cohort retention, RFM grid and sources."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from dashboard_extension.charts import cohort_heatmap, funnel_bars, rfm_grid
from dashboard_extension.views import Call, Rendered, read

PERIODS = (3, 6, 12, 24)  # months offered
DEFAULT_MONTHS = 12


def _months(call: Call) -> int:
    raw = call.param("months")
    return int(raw) if raw and raw.isdigit() and int(raw) in PERIODS else DEFAULT_MONTHS


def _revenue(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders and revenue of the period per currency (never summed across currencies)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in sources:
        totals[row["revenue"]["currency"]] += Decimal(str(row["revenue"]["amount"]))
    return [{"amount": amount, "currency": cur} for cur, amount in sorted(totals.items())]


async def overview(call: Call) -> Rendered:
    months = _months(call)
    today = call.now.date()
    start = today - timedelta(days=round(months * 30.44) - 1)
    period = {"from": start.isoformat(), "to": today.isoformat()}
    answer = await read(call, "overview", {"period": period})
    data = answer.data or {}
    analytics = data["analytics"]
    grids = [
        {"currency": grid["currency"], "svg": rfm_grid(grid["cells"], grid["currency"])}
        for grid in analytics["rfmRevenue"]
    ]
    return Rendered(
        "fragments/overview.html",
        {
            "customers_total": data["customers"]["totalCount"],
            "behaviour": analytics["behaviour"],
            "orders": sum(int(row["orders"]) for row in analytics["revenueBySource"]),
            "revenue": _revenue(analytics["revenueBySource"]),
            "funnel_svg": funnel_bars(analytics["funnel"]["steps"]),
            "cohorts_svg": cohort_heatmap(analytics["cohorts"]),
            "rfm_grids": grids,
            "sources": analytics["revenueBySource"],
            "months": months,
            "periods": PERIODS,
            "period": period,
        },
    )
