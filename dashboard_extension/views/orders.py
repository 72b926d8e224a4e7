"""The order page's widget: who bought, what the CRM knows of them, where the parcels are."""

from __future__ import annotations

from dashboard_extension.views import Call, Problem, Rendered, read


async def order_widget(call: Call) -> Rendered:
    order_id = call.param("orderId")
    if not order_id:
        raise Problem(400, "No order given", "Open the widget from an order's page.")
    answer = await read(call, "order_widget", {"saleorId": order_id})
    overview = answer.data["orderOverview"] if answer.data else None
    return Rendered(
        "fragments/order_widget.html",
        {"o": overview, "can_see_customer": call.has("MANAGE_USERS")},
    )
