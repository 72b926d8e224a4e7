"""One listed object, read once: its ids, Saleor's times and the person it names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plugin.commerce.orders import (
    line_values,
    order_entry_data,
    order_profile_fields,
    order_summary,
    order_values,
)
from plugin.profiles.contacts import claims_for
from plugin.profiles.identity import Claims
from plugin.profiles.suppression import Contact, ErasedKeys, erased_keys, person_contacts
from plugin.saleor.payloads import JSON, PayloadError, parse_datetime, require, require_datetime
from plugin.timeline.keys import entry_key

ORDER_CREATED = "order_created"  # the event an imported order stands for


@dataclass
class Item:
    """An object of a page as the webhook it stands for (`*_CREATED`, issued when it was
    created): `issued_at` stamps its timeline entry, `updated_at` orders its snapshots."""

    node: JSON
    saleor_id: str
    issued_at: datetime
    updated_at: datetime
    claims: Claims
    extra: dict[str, Any] = field(default_factory=dict)
    # (salt, keys): the contacts hashed as erased ones are stored, with the salt used.
    erased: tuple[str, ErasedKeys] | None = None


def node_contacts(resource: str, node: JSON) -> list[Contact]:
    """The person an object names, as the erased-person check sees it: its Saleor user
    and e-mails."""
    if resource == "customers":
        return person_contacts({"id": node.get("id")}, node.get("email"))
    return person_contacts(node.get("user"), node.get("userEmail"), node.get("email"))


def read_item(resource: str, node: JSON, now: datetime) -> Item:
    """The object's keys, or a `PayloadError` naming what is missing."""
    saleor_id = str(require(node, "id"))
    created_field = {"customers": "dateJoined"}.get(resource, "created")
    issued = node.get(created_field) or node.get("updatedAt") or now.isoformat()
    issued_at = require_datetime(issued, "issuedAt")
    updated_at = parse_datetime(node.get("updatedAt")) or issued_at
    billing, shipping = node.get("billingAddress"), node.get("shippingAddress")
    if resource == "customers":
        claims = claims_for(
            node,
            node.get("email"),
            node.get("defaultShippingAddress"),
            node.get("defaultBillingAddress"),
        )
    elif resource == "orders":
        claims = claims_for(node.get("user"), node.get("userEmail"), billing, shipping)
    else:
        claims = claims_for(node.get("user"), node.get("email"), billing, shipping)
    return Item(node, saleor_id, issued_at, updated_at, claims)


def prepare(resource: str, node: JSON, now: datetime, salt: str | None = None) -> Item | None:
    """The object read ahead of its fold, with what reading it alone tells (an order's
    columns, lines and the buyer's fields): done while earlier pages wait on the database,
    it leaves the fold only the work that needs the stored state. With the shop's `salt`,
    its contacts are hashed for the erased-person check too. None when the object is
    malformed (its fold then reports why, on the object)."""
    try:
        item = read_item(resource, node, now)
        if salt is not None:
            item.erased = (salt, erased_keys(salt, node_contacts(resource, node)))
        if resource == "orders":
            values = order_values(node, item.updated_at)
            number, currency = values["number"], values["currency"]
            item.extra.update(
                values=values,
                lines=line_values(node, currency),
                fields=order_profile_fields(node, item.claims.email),
                # The timeline entry as a new order's snapshot gives it.
                summary=order_summary(ORDER_CREATED, number or item.saleor_id, node, currency),
                entry_data=order_entry_data(number, node, currency),
                dedup_key=dedup_key(ORDER_CREATED, item),
            )
    except (PayloadError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return item


def dedup_key(event_type: str, item: Item) -> str:
    """The timeline key the webhook of the same event uses (plugin/timeline/keys.py)."""
    return entry_key(event_type, item.saleor_id, item.updated_at)


def first_duplicate(items: Sequence[Item]) -> int:
    """Index of the first object listed twice in the page (a later snapshot of one already
    seen is folded on its own, after it), or len(items)."""
    seen: set[str] = set()
    for n, item in enumerate(items):
        if item.saleor_id in seen:
            return n
        seen.add(item.saleor_id)
    return len(items)
