"""An in-memory Saleor shop whose mutations emit webhook payloads, as Saleor would.

Every payload is produced by executing the app's own subscription documents
(`graphql/subscriptions/*.graphql`) against Saleor's schema, so a field the app asks for
but Saleor does not have fails here, and the body has exactly the shape Saleor sends.
The clock is simulated: each mutation moves it one second forward, so `issuedAt` and
`updatedAt` order events the way a real shop would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from graphql import DocumentNode, execute_sync, parse

from plugin.saleor.documents import document
from tests.saleor_schema import saleor_schema
from tests.simulator.server import SALEOR_VERSION, global_id

SUBSCRIPTIONS = Path(__file__).resolve().parents[2] / "graphql" / "subscriptions"
FAMILY_DOCUMENT = {
    "checkout": "checkout_events.graphql",
    "order": "order_events.graphql",
    "fulfillment": "fulfillment_events.graphql",
    "customer": "customer_events.graphql",
    "app": "app_events.graphql",
}

ISSUE_DELAY = timedelta(milliseconds=12.5)
# (product name, SKU, category name, quantity, unit gross price)
Line = tuple[str, str, str, int, float]
JSON = dict[str, Any]


@cache
def _document(family: str) -> DocumentNode:
    return parse(document(SUBSCRIPTIONS / FAMILY_DOCUMENT[family]))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _money(value: float, currency: str) -> JSON:
    return {"amount": round(value, 2), "currency": currency}


def _taxed(value: float, currency: str, tax_rate: float = 0.0) -> JSON:
    net = round(value / (1 + tax_rate), 2)
    return {
        "gross": _money(value, currency),
        "net": _money(net, currency),
        "tax": _money(value - net, currency),
        "currency": currency,
    }


def _metadata(meta: Mapping[str, str] | None) -> list[JSON]:
    return [{"key": k, "value": v} for k, v in (meta or {}).items()]


@dataclass(frozen=True)
class Event:
    """One webhook as Saleor would deliver it: the header's event name and the raw body."""

    event_type: str
    typename: str
    payload: JSON
    body: bytes
    issued_at: datetime

    @property
    def family(self) -> str:
        return self.event_type.split("_", 1)[0]

    @property
    def object_id(self) -> str:
        """The Saleor id of the object the event is about (order, checkout, user, …)."""
        for key in ("fulfillment", "order", "checkout", "user", "app"):
            obj = self.payload.get(key)
            if isinstance(obj, dict) and obj.get("id"):
                return str(obj["id"])
        raise KeyError("event carries no object")


@dataclass
class FakeShop:
    """A Saleor shop with one channel; mutate it and get the webhooks it would send."""

    currency: str = "USD"
    channel_slug: str = "default-channel"
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    app_id: str = field(default_factory=lambda: global_id("App", 42))
    users: dict[str, JSON] = field(default_factory=dict)
    checkouts: dict[str, JSON] = field(default_factory=dict)
    orders: dict[str, JSON] = field(default_factory=dict)
    fulfillments: dict[str, JSON] = field(default_factory=dict)
    _counter: int = 0
    _catalog: dict[str, JSON] = field(default_factory=dict)

    # -- plumbing ----------------------------------------------------------------------
    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _uuid(self) -> str:
        return str(uuid.UUID(int=0x5A1E0000_0000_4000_8000_000000000000 + self._next()))

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now = self.now + timedelta(seconds=seconds)
        return self.now

    @property
    def channel(self) -> JSON:
        return {
            "id": global_id("Channel", 1),
            "slug": self.channel_slug,
            "currencyCode": self.currency,
        }

    def _emit(self, typename: str, **objects: Any) -> Event:
        event_type = "".join(
            "_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(typename)
        )
        family = event_type.split("_", 1)[0]
        # Saleor stamps `issuedAt` when it makes the payload, after saving the object: a
        # few milliseconds after the object's `created` / `updatedAt`, never equal.
        issued = self.now + ISSUE_DELAY
        root = {
            "event": {
                "__typename": typename,
                "issuedAt": _iso(issued),
                "version": SALEOR_VERSION,
                "issuingPrincipal": {
                    "__typename": "User",
                    "id": global_id("User", 900),
                    "email": "staff@shop.example",
                },
                **objects,
            }
        }
        result = execute_sync(saleor_schema(), _document(family), root_value=root)
        if result.errors:
            raise AssertionError(f"{typename}: payload does not fit the schema: {result.errors}")
        assert result.data is not None
        payload = result.data["event"]
        body = json.dumps(payload, ensure_ascii=False).encode()
        return Event(event_type, typename, payload, body, issued)

    # -- catalogue and addresses -------------------------------------------------------
    def _variant(self, name: str, sku: str, category: str) -> JSON:
        if sku not in self._catalog:
            number = self._next()
            self._catalog[sku] = {
                "id": global_id("ProductVariant", number),
                "sku": sku,
                "name": sku,
                "product": {
                    "id": global_id("Product", number),
                    "name": name,
                    "slug": name.lower().replace(" ", "-"),
                    "category": {
                        "id": global_id("Category", sum(map(ord, category))),
                        "name": category,
                        "slug": category.lower().replace(" ", "-"),
                    },
                    "productType": {"id": global_id("ProductType", 1), "name": "Simple"},
                },
            }
        return self._catalog[sku]

    def address(
        self,
        *,
        first_name: str = "",
        last_name: str = "",
        city: str = "Springfield",
        country: str = "US",
        phone: str | None = None,
        street: str = "1 Main St",
        postal_code: str = "10001",
    ) -> JSON:
        return {
            "id": global_id("Address", self._next()),
            "firstName": first_name,
            "lastName": last_name,
            "companyName": "",
            "streetAddress1": street,
            "streetAddress2": "",
            "city": city.upper(),
            "cityArea": "",
            "postalCode": postal_code,
            "countryArea": "",
            "country": {"code": country, "country": country},
            "phone": phone or "",
        }

    # -- customers ---------------------------------------------------------------------
    def create_customer(
        self,
        email: str,
        *,
        first_name: str = "",
        last_name: str = "",
        phone: str | None = None,
        city: str = "Springfield",
        country: str = "US",
        metadata: Mapping[str, str] | None = None,
        note: str | None = None,
    ) -> list[Event]:
        now = self.tick()
        address = self.address(
            first_name=first_name, last_name=last_name, city=city, country=country, phone=phone
        )
        user_id = global_id("User", self._next())
        self.users[user_id] = {
            "id": user_id,
            "email": email,
            "firstName": first_name,
            "lastName": last_name,
            "isActive": True,
            "isConfirmed": True,
            "isStaff": False,
            "dateJoined": _iso(now),
            "updatedAt": _iso(now),
            "lastLogin": None,
            "languageCode": "EN_US",
            "externalReference": None,
            "note": note,
            "defaultBillingAddress": address,
            "defaultShippingAddress": address,
            "addresses": [address],
            "metadata": _metadata(metadata),
        }
        return [self._emit("CustomerCreated", user=self.users[user_id])]

    def create_staff(self, email: str, *, first_name: str = "", last_name: str = "") -> str:
        """A staff account (`staffCreate`: Saleor sends STAFF_CREATED, which the app does
        not subscribe to, so no event); its id. Staff can create checkouts while logged in;
        Saleor's `customers` list shows them once they have an order."""
        now = self.tick()
        user_id = global_id("User", self._next())
        self.users[user_id] = {
            "id": user_id,
            "email": email,
            "firstName": first_name,
            "lastName": last_name,
            "isActive": True,
            "isConfirmed": True,
            "isStaff": True,
            "dateJoined": _iso(now),
            "updatedAt": _iso(now),
            "lastLogin": None,
            "languageCode": "EN_US",
            "externalReference": None,
            "note": None,
            "defaultBillingAddress": None,
            "defaultShippingAddress": None,
            "addresses": [],
            "metadata": [],
        }
        return user_id

    def user_id(self, email: str) -> str:
        for user in self.users.values():
            if user["email"].lower() == email.lower():
                return str(user["id"])
        raise KeyError(email)

    def update_customer(
        self,
        user_id: str,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        city: str | None = None,
        is_active: bool | None = None,
    ) -> list[Event]:
        user = self.users[user_id]
        if email is not None:
            user["email"] = email
        if first_name is not None:
            user["firstName"] = first_name
        if last_name is not None:
            user["lastName"] = last_name
        if is_active is not None:
            user["isActive"] = is_active
        if phone is not None or city is not None:
            old = user["defaultShippingAddress"] or self.address()
            address = {
                **old,
                "id": global_id("Address", self._next()),
                "phone": phone if phone is not None else old["phone"],
                "city": city.upper() if city is not None else old["city"],
            }
            user["defaultShippingAddress"] = user["defaultBillingAddress"] = address
            user["addresses"] = [address]
        user["updatedAt"] = _iso(self.tick())
        return [self._emit("CustomerUpdated", user=user)]

    def set_customer_metadata(self, user_id: str, metadata: Mapping[str, str]) -> list[Event]:
        user = self.users[user_id]
        current = {i["key"]: i["value"] for i in user["metadata"]}
        user["metadata"] = _metadata({**current, **metadata})
        user["updatedAt"] = _iso(self.tick())
        return [self._emit("CustomerMetadataUpdated", user=user)]

    def delete_customer(self, user_id: str) -> list[Event]:
        user = self.users.pop(user_id)
        self.tick()
        return [self._emit("CustomerDeleted", user=user)]

    # -- checkouts ---------------------------------------------------------------------
    def _checkout_lines(self, lines: Sequence[Line]) -> list[JSON]:
        out = []
        for name, sku, category, quantity, price in lines:
            variant = self._variant(name, sku, category)
            out.append(
                {
                    "id": global_id("CheckoutLine", self._uuid()),
                    "quantity": quantity,
                    "totalPrice": _taxed(price * quantity, self.currency),
                    "variant": variant,
                }
            )
        return out

    def _reprice_checkout(self, checkout: JSON) -> None:
        total = sum(line["totalPrice"]["gross"]["amount"] for line in checkout["lines"])
        checkout["subtotalPrice"] = _taxed(total, self.currency)
        checkout["totalPrice"] = _taxed(total, self.currency)

    def create_checkout(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        lines: Sequence[Line] = (),
        city: str = "Springfield",
        country: str = "US",
        phone: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[Event]:
        now = self.tick()
        token = self._uuid()
        user = self.users[user_id] if user_id else None
        address = self.address(city=city, country=country, phone=phone)
        checkout: JSON = {
            "id": global_id("Checkout", token),
            "token": token,
            "created": _iso(now),
            "updatedAt": _iso(now),
            "email": email or (user["email"] if user else None),
            "languageCode": "EN_US",
            "chargeStatus": "NONE",
            "authorizeStatus": "NONE",
            "voucherCode": None,
            "channel": self.channel,
            "user": user,
            "billingAddress": address,
            "shippingAddress": address,
            "lines": self._checkout_lines(lines),
            "metadata": _metadata(metadata),
        }
        self._reprice_checkout(checkout)
        self.checkouts[checkout["id"]] = checkout
        return [self._emit("CheckoutCreated", checkout=checkout)]

    def update_checkout(
        self,
        checkout_id: str,
        *,
        email: str | None = None,
        lines: Sequence[Line] | None = None,
        city: str | None = None,
        phone: str | None = None,
    ) -> list[Event]:
        checkout = self.checkouts[checkout_id]
        if email is not None:
            checkout["email"] = email
        if lines is not None:
            checkout["lines"] = self._checkout_lines(lines)
            self._reprice_checkout(checkout)
        if city is not None or phone is not None:
            old = checkout["shippingAddress"]
            address = {
                **old,
                "city": city.upper() if city is not None else old["city"],
                "phone": phone if phone is not None else old["phone"],
            }
            checkout["shippingAddress"] = checkout["billingAddress"] = address
        checkout["updatedAt"] = _iso(self.tick())
        return [self._emit("CheckoutUpdated", checkout=checkout)]

    def set_checkout_metadata(self, checkout_id: str, metadata: Mapping[str, str]) -> list[Event]:
        checkout = self.checkouts[checkout_id]
        current = {i["key"]: i["value"] for i in checkout["metadata"]}
        checkout["metadata"] = _metadata({**current, **metadata})
        checkout["updatedAt"] = _iso(self.tick())
        return [self._emit("CheckoutMetadataUpdated", checkout=checkout)]

    def pay_checkout(self, checkout_id: str) -> list[Event]:
        checkout = self.checkouts[checkout_id]
        checkout["chargeStatus"] = "FULL"
        checkout["updatedAt"] = _iso(self.tick())
        return [self._emit("CheckoutFullyPaid", checkout=checkout)]

    def complete_checkout(self, checkout_id: str) -> list[Event]:
        """`checkoutComplete`: the checkout becomes an order and is deleted from Saleor."""
        checkout = self.checkouts.pop(checkout_id)
        user_id = checkout["user"]["id"] if checkout["user"] else None
        lines = [
            (
                line["variant"]["product"]["name"],
                line["variant"]["sku"],
                line["variant"]["product"]["category"]["name"],
                line["quantity"],
                line["totalPrice"]["gross"]["amount"] / line["quantity"],
            )
            for line in checkout["lines"]
        ]
        paid = checkout["chargeStatus"] == "FULL"
        events = self.create_order(
            email=checkout["email"],
            user_id=user_id,
            lines=lines,
            checkout_id=checkout_id,
            shipping_address=checkout["shippingAddress"],
            metadata={i["key"]: i["value"] for i in checkout["metadata"]},
            paid=paid,
        )
        if paid:
            order = self.orders[events[0].object_id]
            events.append(self._emit("OrderFullyPaid", order=order))
        return events

    # -- orders ------------------------------------------------------------------------
    def create_order(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        lines: Sequence[Line] = (),
        city: str = "Springfield",
        country: str = "US",
        phone: str | None = None,
        shipping: float = 5.0,
        metadata: Mapping[str, str] | None = None,
        checkout_id: str | None = None,
        shipping_address: JSON | None = None,
        paid: bool = False,
        voucher_code: str | None = None,
    ) -> list[Event]:
        """A placed order (`ORDER_CREATED`); with a checkout id it came from `checkoutComplete`."""
        now = self.tick()
        user = self.users.get(user_id) if user_id else None
        address = shipping_address or self.address(city=city, country=country, phone=phone)
        order_lines = []
        for name, sku, category, quantity, price in lines:
            variant = self._variant(name, sku, category)
            order_lines.append(
                {
                    "id": global_id("OrderLine", self._uuid()),
                    "productName": name,
                    "variantName": sku,
                    "productSku": sku,
                    "productVariantId": variant["id"],
                    "quantity": quantity,
                    "quantityFulfilled": 0,
                    "unitPrice": _taxed(price, self.currency),
                    "totalPrice": _taxed(price * quantity, self.currency),
                    "variant": variant,
                }
            )
        subtotal = sum(line["totalPrice"]["gross"]["amount"] for line in order_lines)
        total = subtotal + shipping
        order_id = global_id("Order", self._uuid())
        order: JSON = {
            "id": order_id,
            "number": str(1000 + len(self.orders) + 1),
            "created": _iso(now),
            "updatedAt": _iso(now),
            "status": "UNFULFILLED" if checkout_id else "UNCONFIRMED",
            "origin": "CHECKOUT" if checkout_id else "DRAFT",
            "checkoutId": checkout_id,
            "userEmail": email or (user["email"] if user else None),
            "languageCodeEnum": "EN_US",
            "isPaid": paid,
            "chargeStatus": "FULL" if paid else "NONE",
            "authorizeStatus": "FULL" if paid else "NONE",
            "voucherCode": voucher_code,
            "user": user,
            "channel": self.channel,
            "billingAddress": address,
            "shippingAddress": address,
            "subtotal": _taxed(subtotal, self.currency),
            "shippingPrice": _taxed(shipping, self.currency),
            "total": _taxed(total, self.currency, tax_rate=0.2),
            "totalCharged": _money(total if paid else 0.0, self.currency),
            "totalRefunded": _money(0.0, self.currency),
            "lines": order_lines,
            "fulfillments": [],
            "metadata": _metadata(metadata),
        }
        self.orders[order_id] = order
        return [self._emit("OrderCreated", order=order)]

    def _touch(self, order: JSON) -> None:
        order["updatedAt"] = _iso(self.tick())

    def store_raw(self, order_id: str, **stored: Any) -> None:
        """Values Saleor's database may hold but its API cannot serialise (populatedb's
        demo orders have `origin` ""): stored as they are, no webhook (populatedb sends
        none); listing such an order makes Saleor's GraphQL error (tests/simulator/server)."""
        self.orders[order_id].update(stored)

    def confirm_order(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        order["status"] = "UNFULFILLED"
        self._touch(order)
        return [self._emit("OrderConfirmed", order=order)]

    def pay_order(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        total = order["total"]["gross"]["amount"]
        order.update(isPaid=True, chargeStatus="FULL", authorizeStatus="FULL")
        order["totalCharged"] = _money(total, self.currency)
        self._touch(order)
        return [self._emit("OrderPaid", order=order), self._emit("OrderFullyPaid", order=order)]

    def cancel_order(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        order["status"] = "CANCELED"
        self._touch(order)
        return [self._emit("OrderCancelled", order=order)]

    def expire_order(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        order["status"] = "EXPIRED"
        self._touch(order)
        return [self._emit("OrderExpired", order=order)]

    def refund_order(self, order_id: str, amount: float | None = None) -> list[Event]:
        order = self.orders[order_id]
        charged = order["totalCharged"]["amount"]
        refunded = min(charged, order["totalRefunded"]["amount"] + (amount or charged))
        order["totalRefunded"] = _money(refunded, self.currency)
        full = refunded >= charged
        if full:
            order["chargeStatus"] = "NONE"
        self._touch(order)
        typename = "OrderFullyRefunded" if full else "OrderRefunded"
        return [self._emit(typename, order=order)]

    def update_order(
        self, order_id: str, *, email: str | None = None, city: str | None = None
    ) -> list[Event]:
        order = self.orders[order_id]
        if email is not None:
            order["userEmail"] = email
        if city is not None:
            address = {**order["shippingAddress"], "city": city.upper()}
            order["shippingAddress"] = order["billingAddress"] = address
        self._touch(order)
        return [self._emit("OrderUpdated", order=order)]

    def set_order_metadata(self, order_id: str, metadata: Mapping[str, str]) -> list[Event]:
        order = self.orders[order_id]
        current = {i["key"]: i["value"] for i in order["metadata"]}
        order["metadata"] = _metadata({**current, **metadata})
        self._touch(order)
        return [self._emit("OrderMetadataUpdated", order=order)]

    # -- fulfillments ------------------------------------------------------------------
    def fulfill(
        self,
        order_id: str,
        *,
        tracking_number: str = "",
        needs_approval: bool = False,
        warehouse: str = "Main warehouse",
    ) -> list[Event]:
        """Fulfil every remaining line; `ORDER_FULFILLED` follows when nothing is left."""
        order = self.orders[order_id]
        now = self.tick()
        lines = []
        for line in order["lines"]:
            remaining = line["quantity"] - line["quantityFulfilled"]
            if remaining <= 0:
                continue
            if not needs_approval:
                line["quantityFulfilled"] += remaining
            lines.append(
                {
                    "id": global_id("FulfillmentLine", self._next()),
                    "quantity": remaining,
                    "orderLine": line,
                }
            )
        number = len(order["fulfillments"]) + 1
        fulfillment: JSON = {
            "id": global_id("Fulfillment", self._next()),
            "fulfillmentOrder": number,
            "status": "WAITING_FOR_APPROVAL" if needs_approval else "FULFILLED",
            "trackingNumber": tracking_number,
            "created": _iso(now),
            "warehouse": {"id": global_id("Warehouse", 1), "name": warehouse},
            "lines": lines,
            "metadata": [],
        }
        self.fulfillments[fulfillment["id"]] = {**fulfillment, "order_id": order_id}
        order["fulfillments"].append(fulfillment)
        events = [
            self._emit(
                "FulfillmentCreated", notifyCustomer=True, fulfillment=fulfillment, order=order
            )
        ]
        if not needs_approval:
            events.extend(self._after_fulfilment(order))
        return events

    def _after_fulfilment(self, order: JSON) -> Iterable[Event]:
        if all(line["quantityFulfilled"] >= line["quantity"] for line in order["lines"]):
            order["status"] = "FULFILLED"
            self._touch(order)
            yield self._emit("OrderFulfilled", order=order)
        else:
            order["status"] = "PARTIALLY_FULFILLED"
            self._touch(order)
            yield self._emit("OrderUpdated", order=order)

    def _fulfillment(self, fulfillment_id: str) -> tuple[JSON, JSON]:
        stored = self.fulfillments[fulfillment_id]
        order = self.orders[stored["order_id"]]
        current = next(f for f in order["fulfillments"] if f["id"] == fulfillment_id)
        return current, order

    def approve_fulfillment(self, fulfillment_id: str) -> list[Event]:
        fulfillment, order = self._fulfillment(fulfillment_id)
        fulfillment["status"] = "FULFILLED"
        for line in fulfillment["lines"]:
            line["orderLine"]["quantityFulfilled"] += line["quantity"]
        self.tick()
        events = [
            self._emit(
                "FulfillmentApproved", notifyCustomer=True, fulfillment=fulfillment, order=order
            )
        ]
        events.extend(self._after_fulfilment(order))
        return events

    def cancel_fulfillment(self, fulfillment_id: str) -> list[Event]:
        fulfillment, order = self._fulfillment(fulfillment_id)
        if fulfillment["status"] == "FULFILLED":
            for line in fulfillment["lines"]:
                line["orderLine"]["quantityFulfilled"] -= line["quantity"]
        fulfillment["status"] = "CANCELED"
        order["status"] = "UNFULFILLED"
        self._touch(order)
        return [self._emit("FulfillmentCanceled", fulfillment=fulfillment, order=order)]

    def set_tracking_number(self, fulfillment_id: str, tracking_number: str) -> list[Event]:
        fulfillment, order = self._fulfillment(fulfillment_id)
        fulfillment["trackingNumber"] = tracking_number
        self.tick()
        return [
            self._emit("FulfillmentTrackingNumberUpdated", fulfillment=fulfillment, order=order)
        ]

    def set_fulfillment_metadata(
        self, fulfillment_id: str, metadata: Mapping[str, str]
    ) -> list[Event]:
        fulfillment, order = self._fulfillment(fulfillment_id)
        current = {i["key"]: i["value"] for i in fulfillment["metadata"]}
        fulfillment["metadata"] = _metadata({**current, **metadata})
        self.tick()
        return [self._emit("FulfillmentMetadataUpdated", fulfillment=fulfillment, order=order)]

    # -- the app itself ----------------------------------------------------------------
    def delete_app(self, app_id: str | None = None) -> list[Event]:
        self.tick()
        return [self._emit("AppDeleted", app={"id": app_id or self.app_id, "name": "Saleor CRM"})]
