"""The figures of every profile a page touched, in a handful of statements.

An import does not recompute them page by page: the profiles it touched are marked stale
(`mark_stale`, one multi-row INSERT a batch) and recomputed once each when the run ends
(`settle_stale`, thousands per transaction): a customer with ten orders spread over ten
pages is computed once, not ten times, and each order is read once.

The same definitions as `plugin.profiles.aggregates.recompute` (which does one profile at a
time) — the same function computes them (`order_figures`) — but the profiles' orders and
checkouts are read in one query each, then the figures written with one UPDATE and the
per-currency totals replaced with one DELETE and one multi-row INSERT.
"""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, Order
from plugin.importer import pg_bulk
from plugin.importer.bulk import any_of, delete_where_in, insert_rows
from plugin.importer.models import StaleFigures
from plugin.importer.people import update_profiles
from plugin.profiles.aggregates import (
    _CurrencyFigures,
    latest_order_channel,
    order_figures,
)
from plugin.profiles.models import Profile, ProfileTotal


def _figures(
    orders: list[Any], checkouts: list[Any]
) -> tuple[dict[str, Any], dict[str, _CurrencyFigures]]:
    """`plugin.profiles.aggregates`' figures, with the checkouts' part from rows read."""
    values, per_currency = order_figures(orders)
    values["last_checkout_at"] = max((c.source_updated_at for c in checkouts), default=None)
    values["channel"] = latest_order_channel(orders) or _cart_channel(checkouts)
    return values, per_currency


def _cart_channel(checkouts: list[Any]) -> str | None:
    """For one who never ordered: the latest checkout's channel."""
    carts = [c for c in checkouts if c.channel_slug is not None]
    if carts:
        return str(max(carts, key=lambda c: (c.source_updated_at, c.id)).channel_slug)
    return None


ORDER_COLUMNS: tuple[str, ...] = ("profile_id", "id", "status", "currency", "total_gross")
ORDER_COLUMNS += ("total_charged",)
ORDER_COLUMNS += ("total_refunded", "is_paid", "charge_status", "placed_at", "channel_slug")
CHECKOUT_COLUMNS = ("profile_id", "id", "source_updated_at", "channel_slug")
_OrderRow = namedtuple("_OrderRow", ORDER_COLUMNS)  # type: ignore[misc]
_CheckoutRow = namedtuple("_CheckoutRow", CHECKOUT_COLUMNS)  # type: ignore[misc]


async def _read(
    session: AsyncSession, ids: list[int]
) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """The profiles' orders (every status: `order_figures` tells what each counts for)
    and their checkouts, grouped by profile."""
    orders: dict[int, list[Any]] = defaultdict(list)
    checkouts: dict[int, list[Any]] = defaultdict(list)
    if session.get_bind().dialect.name == "postgresql":
        order_rows = await pg_bulk.fetch(
            session,
            f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders "
            "WHERE profile_id IN (SELECT unnest($1::int4[]))",
            ids,
        )
        cart_rows = await pg_bulk.fetch(
            session,
            f"SELECT {', '.join(CHECKOUT_COLUMNS)} FROM checkouts "
            "WHERE profile_id IN (SELECT unnest($1::int4[]))",
            ids,
        )
        # A record's values come in the SELECT's column order: a named tuple over them is
        # the cheapest object with the attributes `_figures` reads.
        for row in order_rows:
            orders[row[0]].append(_OrderRow._make(row))
        for row in cart_rows:
            checkouts[row[0]].append(_CheckoutRow._make(row))
        return orders, checkouts
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        order_query = select(*(getattr(Order, c) for c in ORDER_COLUMNS)).where(
            Order.profile_id.in_(chunk)
        )
        for row in await session.execute(order_query):
            orders[int(row.profile_id)].append(row)
        cart_query = select(*(getattr(Checkout, c) for c in CHECKOUT_COLUMNS)).where(
            Checkout.profile_id.in_(chunk)
        )
        for cart in await session.execute(cart_query):
            checkouts[int(cart.profile_id)].append(cart)
    return orders, checkouts


async def recompute_profiles(
    session: AsyncSession,
    installation_id: int,
    profile_ids: Iterable[int],
    pending: dict[int, dict[str, Any]] | None = None,
) -> None:
    """`pending`: new state of some of these profiles, written in the same UPDATE (one new
    row version per profile and page instead of two)."""
    pending = pending or {}
    ids = sorted(set(profile_ids) | set(pending))
    if not ids:
        return
    orders, checkouts = await _read(session, ids)
    updates, with_state, totals = [], [], []
    for pid in ids:
        values, per_currency = _figures(orders.get(pid, []), checkouts.get(pid, []))
        if pid in pending:
            with_state.append({"id": pid, **pending[pid], **values})
        else:
            updates.append({"id": pid, **values})
        totals += [
            {
                "installation_id": installation_id,
                "profile_id": pid,
                "currency": currency,
                "orders_count": f.orders,
                "paid_orders_count": f.paid,
                "total_spent": f.spent,
                "average_order_value": f.average_check,
            }
            for currency, f in per_currency.items()
        ]
    await update_profiles(session, updates)
    await update_profiles(session, with_state)
    await delete_where_in(session, ProfileTotal, "profile_id", ids)
    await insert_rows(session, ProfileTotal, totals)


async def mark_stale(
    session: AsyncSession, installation_id: int, profile_ids: Iterable[int]
) -> None:
    """Leave these profiles' figures to `settle_stale` (at the end of the import). Only
    profiles that still exist (one merged into another during the page is gone)."""
    ids = sorted(profile_ids)
    if not ids:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(StaleFigures)
        .from_select(
            ["installation_id", "profile_id"],
            select(Profile.installation_id, Profile.id).where(
                Profile.installation_id == installation_id, any_of(session, Profile.id, ids)
            ),
        )
        .on_conflict_do_nothing(index_elements=["profile_id"])
    )
    await session.execute(statement)


async def stale_profiles(
    session: AsyncSession, installation_id: int, limit: int | None = None
) -> list[int]:
    """The profiles whose figures wait to be settled, lowest ids first."""
    query = (
        select(StaleFigures.profile_id)
        .where(StaleFigures.installation_id == installation_id)
        .order_by(StaleFigures.profile_id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def settle_profiles(session: AsyncSession, installation_id: int, ids: list[int]) -> None:
    """Recompute these stale profiles' figures and clear their marks (a profile merged
    away meanwhile is simply gone). Run under the shop's fold lock — shared by slices of
    one settling, which never share a profile — so a webhook never interleaves."""
    if not ids:
        return
    await recompute_profiles(session, installation_id, ids)
    await session.execute(delete(StaleFigures).where(any_of(session, StaleFigures.profile_id, ids)))


async def settle_stale(session: AsyncSession, installation_id: int, limit: int) -> int:
    """Settle up to `limit` stale profiles (lowest ids first); how many (0: none left)."""
    ids = await stale_profiles(session, installation_id, limit)
    await settle_profiles(session, installation_id, ids)
    return len(ids)
