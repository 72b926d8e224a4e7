"""The order page's widget: who bought, what the CRM knows of them, where the parcels are.

Each fulfillment shows its parcel as the tracking package holds it (`shipments` of the
order: status, carrier, the carrier's words, ETA, pick-up point), which also covers an
order the CRM could not tie to a customer; the buyer's timeline news (`deliveryStatus`)
is the fallback for a fulfillment the tracker has no parcel for.
"""

from __future__ import annotations

from typing import Any

from dashboard_extension.views import Call, Problem, Rendered, read


def parcels(overview: dict[str, Any], shipments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order's fulfillments, each with its shipment (None when not tracked)."""
    by_fulfillment = {s["fulfillmentId"]: s for s in shipments}
    return [{**f, "shipment": by_fulfillment.get(f["saleorId"])} for f in overview["fulfillments"]]


async def order_widget(call: Call) -> Rendered:
    order_id = call.param("orderId")
    if not order_id:
        raise Problem(400, "No order given", "Open the widget from an order's page.")
    answer = await read(call, "order_widget", {"saleorId": order_id, "orderId": order_id})
    data = answer.data or {}
    overview = data.get("orderOverview")
    return Rendered(
        "fragments/order_widget.html",
        {
            "o": overview,
            "parcels": parcels(overview, data.get("shipments") or []) if overview else [],
            "can_see_customer": call.has("MANAGE_USERS"),
        },
    )
