"""Deliveries: the shop's parcels with their status and carrier, filters, delivery times.

The API filters parcels by status and order; the carrier filter is applied here to the
newest 100 (the `shipments` query has no carrier argument). Parcels sent with the manual
carrier get a form to set their status (`shipmentStatusSet`, in `pages.js`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dashboard_extension.charts import delivery_times
from dashboard_extension.views import Call, Rendered, read
from plugin.api.types.tracking import Carrier, ShipmentStatus

PERIODS = (1, 3, 6, 12)  # months offered for the delivery-time chart
DEFAULT_MONTHS = 3
STATUSES = [s.name for s in ShipmentStatus]
CARRIERS = [c.name for c in Carrier]
# Statuses staff may set by hand on a manual parcel (PENDING is where every parcel starts).
SETTABLE = [s for s in STATUSES if s != "PENDING"]


def _choice(raw: str | None, allowed: list[str]) -> str | None:
    value = (raw or "").upper()
    return value if value in allowed else None


def _months(call: Call) -> int:
    raw = call.param("months")
    return int(raw) if raw and raw.isdigit() and int(raw) in PERIODS else DEFAULT_MONTHS


async def delivery_list(call: Call) -> Rendered:
    status = _choice(call.param("status"), STATUSES)
    carrier = _choice(call.param("carrier"), CARRIERS)
    order = call.param("order")
    months = _months(call)
    today = call.now.date()
    start = today - timedelta(days=round(months * 30.44) - 1)
    period = {"from": start.isoformat(), "to": today.isoformat()}
    answer = await read(call, "deliveries", {"status": status, "orderId": order, "period": period})
    data = answer.data or {}
    parcels: list[dict[str, Any]] = data["shipments"]
    if carrier:
        parcels = [p for p in parcels if p["carrier"] == carrier]
    report = data["deliveryAnalytics"]
    return Rendered(
        "fragments/deliveries.html",
        {
            "parcels": parcels,
            "total": report["total"],
            "by_carrier": delivery_times(report["byCarrier"], "Days to deliver by carrier"),
            "by_month": delivery_times(report["byMonth"], "Days to deliver by month shipped"),
            "statuses": STATUSES,
            "settable": SETTABLE,
            "carriers": CARRIERS,
            "status": status or "",
            "carrier": carrier or "",
            "order": order or "",
            "months": months,
            "periods": PERIODS,
            "period": period,
        },
    )
