"""A page of orders folded set-based, with the rules of `plugin.commerce.orders`.

New orders are inserted in one multi-row INSERT (their lines in another); an order already
stored takes the snapshot only when it is at least as new by `updatedAt` (then its lines
are replaced), otherwise only its buyer; carts the orders came from are marked converted;
the buyers' fields follow the same per-field time rules; one timeline entry per order with
the webhook's dedup key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.commerce.orders import (
    SOURCE_COLUMNS,
    checkout_keys,
    line_values,
    order_entry_data,
    order_profile_fields,
    order_summary,
    order_values,
)
from plugin.db.base import utcnow
from plugin.importer.bulk import any_of, insert_rows, update_rows, write_with_lines
from plugin.importer.items import ORDER_CREATED, Item, dedup_key, first_duplicate
from plugin.importer.people import PURCHASE_COLUMNS, NeedsMerge, PageIdentities, PageWrites, Person
from plugin.importer.timeline import entry
from plugin.profiles.fields import apply_fields, apply_source
from plugin.profiles.identity import buyer_fields, placed_by, with_placed_by
from plugin.timeline.models import TimelineEntry

EVENT = ORDER_CREATED
KEPT: tuple[str, ...] = ("id", "profile_id", "source_updated_at", "placed_at", "number")
KEPT += ("currency", "checkout_saleor_id", *SOURCE_COLUMNS)
SOURCE_COLUMNS_OF_CHECKOUT = tuple(getattr(Checkout, c) for c in SOURCE_COLUMNS)


async def _stored(session: AsyncSession, installation_id: int, ids: list[str]) -> dict[str, Any]:
    rows = await session.execute(
        select(Order.saleor_id, *(getattr(Order, c) for c in KEPT)).where(
            Order.installation_id == installation_id, any_of(session, Order.saleor_id, ids)
        )
    )
    return {row.saleor_id: row for row in rows}


async def _carts(session: AsyncSession, installation_id: int, keys: set[str]) -> dict[str, Any]:
    """Each key (global id or token) → the cart it names (the oldest when several)."""
    if not keys:
        return {}
    rows = await session.execute(
        select(Checkout.id, Checkout.saleor_id, Checkout.token, *SOURCE_COLUMNS_OF_CHECKOUT)
        .where(
            Checkout.installation_id == installation_id,
            or_(Checkout.saleor_id.in_(sorted(keys)), Checkout.token.in_(sorted(keys))),
        )
        .order_by(Checkout.id)
    )
    found: dict[str, Any] = {}
    for row in rows:
        for key in (row.saleor_id, row.token):
            if key is not None:
                found.setdefault(key, row)
    return found


async def fold_orders(
    session: AsyncSession, installation_id: int, items: Sequence[Item], page: PageWrites
) -> int:
    """Fold the leading objects that need no merge; returns how many were folded."""
    items = items[: first_duplicate(items)]
    people = PageIdentities(installation_id, PURCHASE_COLUMNS)
    await people.load(session, [i.claims for i in items])
    stored = await _stored(session, installation_id, [i.saleor_id for i in items])

    plans: list[tuple[Item, Person | None, dict[str, Any]]] = []
    for item in items:
        person = people.resolve(item.claims)
        if isinstance(person, NeedsMerge):
            break
        values = item.extra.get("values") or order_values(item.node, item.updated_at)
        plans.append((item, person, values))
    if not plans:
        return 0

    keys = {
        k
        for item, _, values in plans
        for k in checkout_keys(
            values["checkout_saleor_id"]
            if _takes_snapshot(stored.get(item.saleor_id), item)
            else stored[item.saleor_id].checkout_saleor_id
        )
    }
    carts = await _carts(session, installation_id, keys)

    final_of: list[dict[str, Any]] = []
    converted: dict[int, str] = {}
    for item, person, values in plans:
        old = stored.get(item.saleor_id)
        final = dict(values) if _takes_snapshot(old, item) else {c: getattr(old, c) for c in KEPT}
        cart = next(
            (carts[k] for k in checkout_keys(final["checkout_saleor_id"]) if k in carts), None
        )
        if cart is not None:
            converted[cart.id] = item.saleor_id
            if not any(final[c] for c in ("utm_source", "utm_medium", "utm_campaign", "referrer")):
                final.update({c: getattr(cart, c) for c in SOURCE_COLUMNS})
        final_of.append(final)
        if person is not None:
            fields = item.extra.get("fields") or order_profile_fields(item.node, item.claims.email)
            fields = buyer_fields(fields, item.claims, person)
            apply_fields(person.as_profile(), final["placed_at"], fields)
            apply_source(
                person.as_profile(), final["placed_at"], {c: final[c] for c in SOURCE_COLUMNS}
            )
    await people.write(session, page.pending)
    await _write(session, installation_id, plans, final_of, stored, page.touched)
    await update_rows(
        session,
        Checkout,
        [
            {"id": cid, "state": CheckoutState.CONVERTED, "order_saleor_id": sid}
            for cid, sid in converted.items()
        ],
    )
    return len(plans)


def _entry(
    installation_id: int,
    person: Person,
    item: Item,
    values: dict[str, Any],
    final: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The order's timeline row: read ahead with the page when the stored order's number
    and currency are the snapshot's own (always, for a new order)."""
    ahead = item.extra
    same = (final["number"], final["currency"]) == (values["number"], values["currency"])
    if same and "summary" in ahead:
        summary, data = ahead["summary"], ahead["entry_data"]
    else:
        number = final["number"] or item.saleor_id
        summary = order_summary(EVENT, number, item.node, final["currency"])
        data = order_entry_data(final["number"], item.node, final["currency"])
    summary, data = with_placed_by(summary, data, placed_by(item.claims, person))
    assert person.id is not None
    return entry(
        installation_id,
        person.id,
        EVENT,
        item,
        subject_type="order",
        summary=summary,
        data=data,
        key=ahead.get("dedup_key") or dedup_key(EVENT, item),
        recorded_at=now,
    )


def _takes_snapshot(old: Any, item: Item) -> bool:
    return old is None or item.updated_at >= old.source_updated_at


async def _write(
    session: AsyncSession,
    installation_id: int,
    plans: list[tuple[Item, Person | None, dict[str, Any]]],
    final_of: list[dict[str, Any]],
    stored: dict[str, Any],
    touched: set[int],
) -> None:
    now = utcnow()
    new_rows, new_lines, replaced, kept, entries = [], [], [], [], []
    for (item, person, values), final in zip(plans, final_of, strict=True):
        old = stored.get(item.saleor_id)
        pid = person.id if person is not None else None
        lines = item.extra.get("lines")
        if lines is None:
            lines = line_values(item.node, values["currency"])
        if old is None:
            new_rows.append(
                {
                    "installation_id": installation_id,
                    "saleor_id": item.saleor_id,
                    **final,
                    "profile_id": pid,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            new_lines.append(lines)
        else:
            profile_id = pid if pid is not None else old.profile_id
            if _takes_snapshot(old, item):
                replaced.append(({"id": old.id, **final, "profile_id": profile_id}, lines))
            else:
                kept.append({"id": old.id, "profile_id": profile_id, **final})
            if old.profile_id is not None and profile_id != old.profile_id:
                touched.add(old.profile_id)
        if pid is not None:
            touched.add(pid)
            assert person is not None
            entries.append(_entry(installation_id, person, item, values, final, now))
    await write_with_lines(
        session, installation_id, Order, OrderLine, "order_id", (new_rows, new_lines), replaced
    )
    await update_rows(session, Order, [{k: v for k, v in r.items() if k in KEPT} for r in kept])
    await insert_rows(
        session, TimelineEntry, entries, ignore_conflicts_on=["installation_id", "dedup_key"]
    )
