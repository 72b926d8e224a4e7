"""The customer card (widget, popup, app page) and the customers list."""

from __future__ import annotations

from typing import Any

from dashboard_extension.views import Call, Problem, Rendered, read


def _lookup(call: Call) -> dict[str, Any]:
    """`customerId` is what Saleor's customer page passes (a User id); `crmId` ours."""
    crm_id, saleor_id = call.param("crmId"), call.param("customerId")
    if crm_id:
        return {"id": crm_id, "saleorUserId": None}
    if saleor_id:
        return {"id": None, "saleorUserId": saleor_id}
    raise Problem(400, "No customer given", "Open the card from a customer's page.")


def order_path(item: dict[str, Any]) -> str | None:
    """The Saleor dashboard path of the order a timeline item is about, if any."""
    data = item.get("data") or {}
    if item.get("subjectType") == "order" and item.get("subjectId"):
        return f"/orders/{item['subjectId']}"
    if isinstance(data, dict) and data.get("order_id"):
        return f"/orders/{data['order_id']}"
    return None


def _timeline(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**node, "order_path": order_path(node)} for node in nodes]


def _not_in_crm(call: Call) -> Rendered:
    return Rendered("fragments/no_customer.html", {"crm_id": call.param("crmId")})


async def widget(call: Call) -> Rendered:
    answer = await read(call, "customer_widget", _lookup(call))
    customer = answer.data["customer"] if answer.data else None
    if customer is None:
        return _not_in_crm(call)
    return Rendered(
        "fragments/customer_widget.html",
        {"c": customer, "timeline": _timeline(customer["timeline"]["nodes"])},
    )


async def card(call: Call) -> Rendered:
    variables = {**_lookup(call), "withOrders": call.has("MANAGE_ORDERS")}
    answer = await read(call, "customer_card", variables)
    customer = answer.data["customer"] if answer.data else None
    if customer is None:
        return _not_in_crm(call)
    orders = customer.get("orders") or {"nodes": [], "totalCount": None}
    return Rendered(
        "fragments/customer_card.html",
        {
            "c": customer,
            "orders": orders,
            "timeline": _timeline(customer["timeline"]["nodes"]),
            "can_see_orders": call.has("MANAGE_ORDERS"),
        },
    )


async def customer_list(call: Call) -> Rendered:
    search, segment = call.param("search"), call.param("segment")
    answer = await read(
        call, "customers", {"search": search, "segment": segment, "after": call.param("after")}
    )
    data = answer.data or {}
    return Rendered(
        "fragments/customers.html",
        {
            "customers": data["customers"],
            "segments": data["segments"],
            "search": search or "",
            "segment": segment or "",
        },
    )
