"""What a merchant and their shoppers do in Saleor, through Saleor's own API: customers,
draft orders taken by staff, checkouts paid with the dummy gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.real_saleor.saleor_api import SaleorApi

DUMMY_GATEWAY = "mirumee.payments.dummy"
ADDRESS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "streetAddress1": "1600 Amphitheatre Parkway",
    "city": "Mountain View",
    "postalCode": "94043",
    "country": "US",
    "countryArea": "CA",
    "phone": "+16505550100",
}
ERRORS = "errors { field code message }"


@dataclass(frozen=True)
class Catalog:
    """Something sellable that ships: a channel, a variant in stock and its warehouse."""

    channel_id: str
    channel_slug: str
    currency: str
    variant_id: str
    warehouse_id: str


async def find_catalog(api: SaleorApi) -> Catalog:
    data = await api.staff("{ channels { id slug currencyCode isActive } }")
    channels = [c for c in data["channels"] if c["isActive"]]
    channel = next((c for c in channels if c["slug"] == "default-channel"), channels[0])
    products = await api.staff(
        """query($channel: String!) {
          products(first: 50, channel: $channel) { edges { node {
            isAvailableForPurchase productType { isShippingRequired }
            variants { id quantityAvailable stocks { quantity warehouse { id } } }
          } } }
        }""",
        {"channel": channel["slug"]},
    )
    for edge in products["products"]["edges"]:
        product = edge["node"]
        if (
            not product["isAvailableForPurchase"]
            or not product["productType"]["isShippingRequired"]
        ):
            continue
        for variant in product["variants"] or []:
            stocks = [s for s in variant["stocks"] or [] if s["quantity"] >= 10]
            if (variant["quantityAvailable"] or 0) >= 10 and stocks:
                return Catalog(
                    channel_id=channel["id"],
                    channel_slug=channel["slug"],
                    currency=channel["currencyCode"],
                    variant_id=variant["id"],
                    warehouse_id=stocks[0]["warehouse"]["id"],
                )
    raise AssertionError(f"populatedb left nothing sellable in {channel['slug']}")


async def create_customer(api: SaleorApi, email: str, first_name: str) -> str:
    result = await api.mutate(
        f"""mutation($input: UserCreateInput!) {{
          customerCreate(input: $input) {{ user {{ id }} {ERRORS} }}
        }}""",
        {"input": {"email": email, "firstName": first_name, "lastName": "Tester"}},
    )
    user_id: str = result["user"]["id"]
    return user_id


async def place_draft_order(api: SaleorApi, catalog: Catalog, email: str) -> dict[str, Any]:
    """Staff take an order: draft with a line and addresses, a shipping method, complete."""
    draft = await api.mutate(
        f"""mutation($input: DraftOrderCreateInput!) {{
          draftOrderCreate(input: $input) {{
            order {{ id shippingMethods {{ id active }} }} {ERRORS}
          }}
        }}""",
        {
            "input": {
                "channelId": catalog.channel_id,
                "userEmail": email,
                "lines": [{"variantId": catalog.variant_id, "quantity": 1}],
                "shippingAddress": ADDRESS,
                "billingAddress": ADDRESS,
            }
        },
    )
    order_id = draft["order"]["id"]
    methods = [m["id"] for m in draft["order"]["shippingMethods"] if m["active"]]
    assert methods, "no shipping method for the draft's address"
    await api.mutate(
        f"""mutation($id: ID!, $input: DraftOrderInput!) {{
          draftOrderUpdate(id: $id, input: $input) {{ order {{ id }} {ERRORS} }}
        }}""",
        {"id": order_id, "input": {"shippingMethod": methods[0]}},
    )
    completed = await api.mutate(
        f"""mutation($id: ID!) {{
          draftOrderComplete(id: $id) {{
            order {{
              id number status lines {{ id quantity }} total {{ gross {{ amount currency }} }}
            }}
            {ERRORS}
          }}
        }}""",
        {"id": order_id},
    )
    order: dict[str, Any] = completed["order"]
    return order


async def mark_paid(api: SaleorApi, order_id: str) -> None:
    await api.mutate(
        f"mutation($id: ID!) {{ orderMarkAsPaid(id: $id) {{ order {{ id }} {ERRORS} }} }}",
        {"id": order_id},
    )


async def fulfill(
    api: SaleorApi, catalog: Catalog, order: dict[str, Any], tracking_number: str
) -> str:
    result = await api.mutate(
        f"""mutation($order: ID!, $input: OrderFulfillInput!) {{
          orderFulfill(order: $order, input: $input) {{ fulfillments {{ id }} {ERRORS} }}
        }}""",
        {
            "order": order["id"],
            "input": {
                "notifyCustomer": False,
                "trackingNumber": tracking_number,
                "lines": [
                    {
                        "orderLineId": line["id"],
                        "stocks": [
                            {"quantity": line["quantity"], "warehouse": catalog.warehouse_id}
                        ],
                    }
                    for line in order["lines"]
                ],
            },
        },
    )
    fulfillment_id: str = result["fulfillments"][0]["id"]
    return fulfillment_id


async def cancel(api: SaleorApi, catalog: Catalog, order_id: str, fulfillment_id: str) -> None:
    """Saleor cancels only an order without live fulfillments: the parcel first."""
    await api.mutate(
        f"""mutation($id: ID!, $input: FulfillmentCancelInput!) {{
          orderFulfillmentCancel(id: $id, input: $input) {{ fulfillment {{ id }} {ERRORS} }}
        }}""",
        {"id": fulfillment_id, "input": {"warehouseId": catalog.warehouse_id}},
    )
    await api.mutate(
        f"mutation($id: ID!) {{ orderCancel(id: $id) {{ order {{ id }} {ERRORS} }} }}",
        {"id": order_id},
    )


async def checkout_and_pay(
    api: SaleorApi, catalog: Catalog, *, email: str | None, token: str | None
) -> dict[str, Any]:
    """A shopper's checkout to the end: lines, addresses, delivery, the dummy gateway's
    payment, complete. With `token` the shopper is logged in (the checkout is theirs)."""
    bearer: str | bool | None = token if token is not None else None
    checkout_input: dict[str, Any] = {
        "channel": catalog.channel_slug,
        "lines": [{"variantId": catalog.variant_id, "quantity": 1}],
        "shippingAddress": ADDRESS,
        "billingAddress": ADDRESS,
    }
    if email is not None:
        checkout_input["email"] = email
    created = await api.mutate(
        f"""mutation($input: CheckoutCreateInput!) {{
          checkoutCreate(input: $input) {{
            checkout {{ id email user {{ id }} shippingMethods {{ id active }} }} {ERRORS}
          }}
        }}""",
        {"input": checkout_input},
        token=bearer,
    )
    checkout = created["checkout"]
    methods = [m["id"] for m in checkout["shippingMethods"] if m["active"]]
    assert methods, "no shipping method for the checkout's address"
    delivered = await api.mutate(
        f"""mutation($id: ID!, $method: ID!) {{
          checkoutDeliveryMethodUpdate(id: $id, deliveryMethodId: $method) {{
            checkout {{ id totalPrice {{ gross {{ amount currency }} }} }} {ERRORS}
          }}
        }}""",
        {"id": checkout["id"], "method": methods[0]},
        token=bearer,
    )
    total = delivered["checkout"]["totalPrice"]["gross"]
    await api.mutate(
        f"""mutation($id: ID!, $input: PaymentInput!) {{
          checkoutPaymentCreate(id: $id, input: $input) {{ payment {{ id }} {ERRORS} }}
        }}""",
        {
            "id": checkout["id"],
            "input": {"gateway": DUMMY_GATEWAY, "token": "tok-crm-test", "amount": total["amount"]},
        },
        token=bearer,
    )
    completed = await api.mutate(
        f"""mutation($id: ID!) {{
          checkoutComplete(id: $id) {{ order {{ id number userEmail user {{ id }} }} {ERRORS} }}
        }}""",
        {"id": checkout["id"]},
        token=bearer,
    )
    return {"checkout_id": checkout["id"], "order": completed["order"], "total": total}


async def customer_token(api: SaleorApi, email: str, password: str) -> str:
    result = await api.mutate(
        """mutation($email: String!, $password: String!) {
          tokenCreate(email: $email, password: $password) { token errors { message } }
        }""",
        {"email": email, "password": password},
        token=None,
    )
    token: str = result["token"]
    return token
