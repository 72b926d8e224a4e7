"""Folding a page of Saleor's objects with the semantics of the webhook folds.

Each object stands for the event Saleor would have sent when it was created (an order →
`ORDER_CREATED`, issued at the order's `created`): snapshots are kept only when at least as
new by Saleor's `updatedAt`, identities resolve the same way, timeline entries carry the
same dedup keys (importing twice, or importing what a webhook already brought, adds
nothing). The page is written set-based (plugin/importer/batch_*.py, hundreds of rows per
statement); `fold_nodes_one_by_one` is the webhook code itself, object by object, which
the set-based path is tested against.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutLine, Order, OrderLine
from plugin.importer.batch_checkouts import fold_checkouts
from plugin.importer.batch_customers import fold_customers
from plugin.importer.batch_orders import fold_orders
from plugin.importer.figures import mark_stale, recompute_profiles
from plugin.importer.items import Item, node_contacts, read_item
from plugin.importer.people import PageWrites
from plugin.inbox.folding import apply_payload, refresh_figures
from plugin.profiles.models import Identity, Profile, ProfileTotal
from plugin.profiles.suppression import erased_among_keys, erased_keys, salt_for
from plugin.saleor.payloads import JSON
from plugin.timeline.models import TimelineEntry

BatchFolder = Callable[[AsyncSession, int, Sequence[Item], PageWrites], Awaitable[int]]
BATCH_FOLDERS: dict[str, BatchFolder] = {
    "customers": fold_customers,
    "checkouts": fold_checkouts,
    "orders": fold_orders,
}
FOLDED_MODELS: tuple[type, ...] = (Profile, Identity, ProfileTotal, Order, OrderLine, Checkout)
FOLDED_MODELS += (CheckoutLine, TimelineEntry)
# The tables a page of each list grows and then looks rows up in (stored objects, people,
# carts, the timeline's keys): their planner statistics go stale as they grow. Tables
# only written to (lines) need none until the end of the run.
GROWN_MODELS: dict[str, tuple[type, ...]] = {
    "customers": (Profile, Identity, TimelineEntry),
    "checkouts": (Checkout, Profile, Identity, TimelineEntry),
    "orders": (Order, Profile, Identity, TimelineEntry),
}
# The columns those look-ups filter and join on: statistics of these alone are a fraction
# of the work (a profile's dozens of columns and JSON are the finishing step's concern).
LOOKUP_COLUMNS: dict[type, tuple[str, ...]] = {
    Profile: ("id", "installation_id"),
    Identity: ("installation_id", "kind", "value", "profile_id"),
    TimelineEntry: ("installation_id", "dedup_key"),
    Order: ("installation_id", "saleor_id", "profile_id", "checkout_saleor_id"),
    Checkout: ("installation_id", "saleor_id", "token", "profile_id"),
}


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


async def erased_people(
    session: AsyncSession,
    installation_id: int,
    resource: str,
    nodes: list[JSON],
    prepared: Sequence[Item | None] | None = None,
) -> list[bool]:
    """Which objects name a person who was erased (a deleted account, a GDPR request):
    Saleor still lists their orders, but importing them would write the person back.
    One query per page; contacts hashed ahead (`items.prepare`) with this shop's salt are
    taken as they are."""
    salt = await salt_for(session, installation_id)
    ready = prepared if prepared is not None else [None] * len(nodes)
    return await erased_among_keys(
        session,
        installation_id,
        [
            item.erased[1]
            if item is not None and item.erased is not None and item.erased[0] == salt
            else erased_keys(salt, node_contacts(resource, node))
            for node, item in zip(nodes, ready, strict=True)
        ],
    )


def staff_account(resource: str, node: JSON) -> bool:
    """Saleor lists staff accounts that have orders among its customers (a phone order's
    user is the staff member), but a staff account is nobody's customer: the webhooks never
    make one a profile, so neither does the import. A staff member who buys for themselves
    is found by the e-mail on that order, like a guest."""
    return resource == "customers" and node.get("isStaff") is True


async def left_out(
    session: AsyncSession,
    installation_id: int,
    resource: str,
    nodes: list[JSON],
    prepared: Sequence[Item | None] | None = None,
) -> list[bool]:
    """The objects an import does not fold: erased people's, and staff accounts."""
    erased = await erased_people(session, installation_id, resource, nodes, prepared)
    return [gone or staff_account(resource, node) for node, gone in zip(nodes, erased, strict=True)]


async def fold_nodes_one_by_one(
    session: AsyncSession, installation_id: int, resource: str, nodes: list[JSON], now: datetime
) -> set[int]:
    """Each object through the webhook fold of the event it stands for, then the figures
    of the customers they touched (once each). The reference the set-based path keeps to,
    and the path of a page that failed (so the failure is pinned on its object)."""
    touched: list[Profile] = []
    skip = await left_out(session, installation_id, resource, nodes)
    for node, skipped in zip(nodes, skip, strict=True):
        if skipped:
            continue
        event_type, payload = as_event(resource, node, now)
        touched += await apply_payload(session, installation_id, event_type, payload)
    return set(await refresh_figures(session, touched))


async def fold_nodes(
    session: AsyncSession,
    installation_id: int,
    resource: str,
    nodes: list[JSON],
    now: datetime,
    *,
    defer_figures: bool = False,
    prepared: Sequence[Item | None] | None = None,
    already_stale: set[int] | None = None,
) -> set[int]:
    """Fold a page set-based: objects naming an erased person and staff accounts are left
    out; runs of objects go through multi-row statements; an object needing a merge of two
    profiles goes through the webhook fold on its own, in its place. Then the figures of every
    profile touched, in a few statements — or, with `defer_figures` (the import), those
    profiles are marked stale and recomputed once each when the run ends. The ids of the
    profiles touched. `prepared`: the nodes already read (`items.prepare`), one per node;
    `already_stale`: profiles known to be marked stale on file (not marked again).

    Segments, RFM, scores and rollups are left to the end of the import, which refreshes
    them for the whole shop in a few statements instead of once per page."""
    skip = await left_out(session, installation_id, resource, nodes, prepared)
    ready = prepared if prepared is not None else [None] * len(nodes)
    items = [
        item or read_item(resource, node, now)
        for node, item, skipped in zip(nodes, ready, skip, strict=True)
        if not skipped
    ]
    folder = BATCH_FOLDERS[resource]
    page = PageWrites()
    start = 0
    while start < len(items):
        start += await folder(session, installation_id, items[start:], page)
        if start < len(items):
            await page.flush_pending(session)
            await _fold_alone(
                session, installation_id, resource, items[start].node, now, page.touched
            )
            start += 1
    if defer_figures:
        await page.flush_pending(session)
        await mark_stale(session, installation_id, page.touched - (already_stale or set()))
    else:
        await recompute_profiles(session, installation_id, page.touched, page.pending)
    return page.touched


async def _fold_alone(
    session: AsyncSession,
    installation_id: int,
    resource: str,
    node: JSON,
    now: datetime,
    touched: set[int],
) -> None:
    """One object through the webhook fold. The ORM's copies of rows the set-based
    statements changed are dropped first (and after), so neither side works on stale rows."""
    _forget_rows(session)
    event_type, payload = as_event(resource, node, now)
    profiles = await apply_payload(session, installation_id, event_type, payload)
    touched.update(p.id for p in profiles)
    await session.flush()
    _forget_rows(session)


def _forget_rows(session: AsyncSession) -> None:
    for obj in list(session.identity_map.values()):
        if isinstance(obj, FOLDED_MODELS):
            session.expunge(obj)
