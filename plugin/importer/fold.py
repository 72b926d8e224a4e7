"""Folding a page of Saleor's objects through the webhook folds.

Each object becomes the event Saleor would have sent when it was created (an order →
`ORDER_CREATED`, issued at the order's `created`), so the same fold code applies it:
snapshots are kept only when at least as new by Saleor's `updatedAt`, identities resolve
the same way, timeline entries carry the same dedup keys (importing twice, or importing
what a webhook already brought, adds nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.inbox.folding import apply_payload, refresh_figures
from plugin.profiles.models import Identity, IdentityKind, Profile
from plugin.profiles.suppression import salt_for, suppression_hash
from plugin.saleor.payloads import JSON


@dataclass(frozen=True)
class ImportEvent:
    event_type: str
    typename: str
    key: str  # where the object sits in the event payload
    created_field: str  # the object's creation time: the event's `issuedAt`


IMPORT_EVENTS: dict[str, ImportEvent] = {
    "customers": ImportEvent("customer_created", "CustomerCreated", "user", "dateJoined"),
    "checkouts": ImportEvent("checkout_created", "CheckoutCreated", "checkout", "created"),
    "orders": ImportEvent("order_created", "OrderCreated", "order", "created"),
}


def as_event(resource: str, node: JSON, now: datetime) -> tuple[str, JSON]:
    """The webhook payload Saleor would have sent when the object was created."""
    spec = IMPORT_EVENTS[resource]
    issued = node.get(spec.created_field) or node.get("updatedAt") or now.isoformat()
    return spec.event_type, {
        "__typename": spec.typename,
        "issuedAt": issued,
        "version": None,
        spec.key: node,
    }


def object_id(node: Any) -> str:
    if isinstance(node, dict) and node.get("id"):
        return str(node["id"])
    return "?"


def _contacts(node: JSON) -> list[tuple[IdentityKind, str]]:
    """The person an object names: its Saleor user and e-mail."""
    user = node.get("user") if isinstance(node.get("user"), dict) else None
    found = []
    user_id = node.get("id") if "dateJoined" in node else (user or {}).get("id")
    if user_id:
        found.append((IdentityKind.SALEOR_USER, str(user_id)))
    for key in ("email", "userEmail"):
        if isinstance(node.get(key), str) and node[key]:
            found.append((IdentityKind.EMAIL, node[key]))
    if user and isinstance(user.get("email"), str) and user["email"]:
        found.append((IdentityKind.EMAIL, user["email"]))
    return found


async def erased_people(
    session: AsyncSession, installation_id: int, nodes: list[JSON]
) -> list[bool]:
    """Which objects name a person who was erased (a deleted account, a GDPR request):
    Saleor still lists their orders, but importing them would write the person back.
    One query per page."""
    salt = await salt_for(session, installation_id)
    hashes = [
        {suppression_hash(salt, kind, value) for kind, value in _contacts(node)} for node in nodes
    ]
    wanted = set().union(*hashes) if hashes else set()
    if not wanted:
        return [False] * len(nodes)
    erased = set(
        await session.scalars(
            select(Identity.value).where(
                Identity.installation_id == installation_id, Identity.value.in_(sorted(wanted))
            )
        )
    )
    return [bool(h & erased) for h in hashes]


async def fold_nodes(
    session: AsyncSession, installation_id: int, resource: str, nodes: list[JSON], now: datetime
) -> list[Profile]:
    """Fold objects and recompute the figures of the customers they touched (once each).
    Objects naming an erased person are left out.

    Segments, RFM, scores and rollups are left to the end of the import, which refreshes
    them for the whole shop in a few statements instead of once per page."""
    touched: list[Profile] = []
    skip = await erased_people(session, installation_id, nodes)
    for node, erased in zip(nodes, skip, strict=True):
        if erased:
            continue
        event_type, payload = as_event(resource, node, now)
        touched += await apply_payload(session, installation_id, event_type, payload)
    await refresh_figures(session, touched)
    return touched
