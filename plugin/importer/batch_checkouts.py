"""A page of checkouts folded set-based, with the rules of `plugin.commerce.checkouts`.

Saleor deletes checkouts, so the CRM keeps their snapshots: new ones are inserted in one
multi-row INSERT (lines in another), stored ones take a snapshot at least as new by
`updatedAt`; a cart whose order is already stored is marked converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.checkouts import (
    checkout_line_values,
    checkout_profile_fields,
    checkout_summary,
    checkout_values,
)
from plugin.commerce.models import Checkout, CheckoutLine, CheckoutState, Order
from plugin.commerce.orders import SOURCE_COLUMNS, checkout_keys
from plugin.db.base import utcnow
from plugin.importer.bulk import any_of, insert_rows, update_rows, write_with_lines
from plugin.importer.items import Item, dedup_key, first_duplicate
from plugin.importer.people import PURCHASE_COLUMNS, NeedsMerge, PageIdentities, PageWrites, Person
from plugin.importer.timeline import entry
from plugin.profiles.fields import apply_fields, apply_source
from plugin.profiles.identity import buyer_fields, placed_by, with_placed_by
from plugin.saleor.payloads import parse_datetime
from plugin.timeline.models import TimelineEntry

EVENT = "checkout_created"
KEPT: tuple[str, ...] = (
    "id",
    "profile_id",
    "source_updated_at",
    "started_at",
    "token",
    "language",
    "currency",
)
KEPT += ("state", "order_saleor_id", *SOURCE_COLUMNS)


async def _stored(session: AsyncSession, installation_id: int, ids: list[str]) -> dict[str, Any]:
    rows = await session.execute(
        select(Checkout.saleor_id, *(getattr(Checkout, c) for c in KEPT)).where(
            Checkout.installation_id == installation_id, any_of(session, Checkout.saleor_id, ids)
        )
    )
    return {row.saleor_id: row for row in rows}


async def _orders_of(session: AsyncSession, installation_id: int, keys: set[str]) -> dict[str, str]:
    """Each checkout key → the order placed from it (the order may arrive first)."""
    if not keys:
        return {}
    rows = await session.execute(
        select(Order.checkout_saleor_id, Order.saleor_id)
        .where(Order.installation_id == installation_id, Order.checkout_saleor_id.in_(keys))
        .order_by(Order.id)
    )
    found: dict[str, str] = {}
    for key, saleor_id in rows:
        if key is not None:
            found.setdefault(key, saleor_id)
    return found


def _keys(item: Item, token: str | None) -> list[str]:
    return checkout_keys(item.saleor_id) + ([token] if token else [])


async def fold_checkouts(
    session: AsyncSession, installation_id: int, items: Sequence[Item], page: PageWrites
) -> int:
    """Fold the leading checkouts that need no merge; returns how many."""
    items = items[: first_duplicate(items)]
    people = PageIdentities(installation_id, PURCHASE_COLUMNS)
    await people.load(session, [i.claims for i in items])
    stored = await _stored(session, installation_id, [i.saleor_id for i in items])
    plans: list[tuple[Item, Person | None, dict[str, Any], dict[str, Any]]] = []
    for item in items:
        person = people.resolve(item.claims)
        if isinstance(person, NeedsMerge):
            break
        values = checkout_values(item.node)
        old = stored.get(item.saleor_id)
        if old is None:
            started = parse_datetime(item.node.get("created")) or item.updated_at
            final = {**values, "started_at": started, "source_updated_at": item.updated_at}
            final |= {"state": CheckoutState.OPEN, "order_saleor_id": None}
        elif item.updated_at >= old.source_updated_at:
            final = {c: getattr(old, c) for c in KEPT if c != "id"}
            final |= {**values, "source_updated_at": item.updated_at}
        else:
            final = {c: getattr(old, c) for c in KEPT if c != "id"}
        plans.append((item, person, values, final))
    if not plans:
        return 0
    placed = await _orders_of(
        session,
        installation_id,
        {k for item, _, _, final in plans for k in _keys(item, final["token"])},
    )
    for item, person, _, final in plans:
        order_id = next((placed[k] for k in _keys(item, final["token"]) if k in placed), None)
        if order_id is not None:
            final |= {"state": CheckoutState.CONVERTED, "order_saleor_id": order_id}
        if person is not None:
            fields = checkout_profile_fields(item.node, item.claims.email, final["language"])
            fields = buyer_fields(fields, item.claims, person)
            apply_fields(person.as_profile(), item.updated_at, fields)
            apply_source(
                person.as_profile(), final["started_at"], {c: final[c] for c in SOURCE_COLUMNS}
            )
    await people.write(session, page.pending)
    await _write(session, installation_id, plans, stored, page.touched)
    return len(plans)


async def _write(
    session: AsyncSession,
    installation_id: int,
    plans: list[tuple[Item, Person | None, dict[str, Any], dict[str, Any]]],
    stored: dict[str, Any],
    touched: set[int],
) -> None:
    now = utcnow()
    new_rows, new_lines, replaced, kept, entries = [], [], [], [], []
    for item, person, values, final in plans:
        old = stored.get(item.saleor_id)
        pid = person.id if person is not None else None
        lines = checkout_line_values(item.node, values["currency"])
        if old is None:
            row = {"installation_id": installation_id, "saleor_id": item.saleor_id, **final}
            new_rows.append(row | {"profile_id": pid, "created_at": now, "updated_at": now})
            new_lines.append(lines)
        else:
            profile_id = pid if pid is not None else old.profile_id
            row = {"id": old.id, **final, "profile_id": profile_id}
            if item.updated_at >= old.source_updated_at:
                replaced.append(({**row, **values}, lines))
            else:
                kept.append(row)
        if pid is not None:
            touched.add(pid)
            summary, data = with_placed_by(
                *checkout_summary(EVENT, item.node, final["currency"]),
                placed_by(item.claims, person),
            )
            entries.append(
                entry(
                    installation_id,
                    pid,
                    EVENT,
                    item,
                    subject_type="checkout",
                    summary=summary,
                    data=data,
                    key=dedup_key(EVENT, item),
                )
            )
    await write_with_lines(
        session,
        installation_id,
        Checkout,
        CheckoutLine,
        "checkout_id",
        (new_rows, new_lines),
        replaced,
    )
    await update_rows(session, Checkout, kept)
    await insert_rows(
        session, TimelineEntry, entries, ignore_conflicts_on=["installation_id", "dedup_key"]
    )
