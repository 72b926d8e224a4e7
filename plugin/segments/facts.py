"""What the single-profile evaluator needs to know about one customer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, bindparam, literal, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.elements import BindParameter

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.profiles.aggregates import NOT_PLACED, PAID_CHARGE_STATUSES
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.segments.models import Segment, SegmentMembership


@dataclass(frozen=True)
class LineFacts:
    product_id: str | None
    product_name: str
    sku: str | None
    category_id: str | None
    category_name: str | None
    category_slug: str | None


@dataclass(frozen=True)
class OrderFacts:
    status: str
    placed_at: datetime
    is_paid: bool
    charge_status: str | None
    total_refunded: Decimal
    voucher_code: str | None
    lines: tuple[LineFacts, ...]

    @property
    def placed(self) -> bool:
        return self.status not in NOT_PLACED

    @property
    def paid(self) -> bool:
        return self.is_paid or (self.charge_status or "") in PAID_CHARGE_STATUSES


@dataclass(frozen=True)
class CheckoutFacts:
    state: CheckoutState
    lines_count: int
    source_updated_at: datetime


@dataclass(frozen=True)
class ProfileFacts:
    attributes: dict[str, Any]
    orders: tuple[OrderFacts, ...]
    checkouts: tuple[CheckoutFacts, ...]
    tags: frozenset[str] = frozenset()
    consents: frozenset[str] = frozenset()  # identity kinds with marketing consent granted
    # keys of the segments the customer is in; updated while a fold re-evaluates them
    segments: set[str] = field(default_factory=set)


PROFILE_COLUMNS = tuple(c.key for c in Profile.__table__.columns)


# Built once: a statement object keeps its cache key, so each fold skips rebuilding
# and re-hashing the three queries and goes straight to the compiled SQL.
_PROFILE: BindParameter[int] = bindparam("profile_id")
# An order and one of its lines per row (the line's columns NULL for an order without
# lines); `orders_from_rows` turns such rows into OrderFacts.
ORDER_WITH_LINES: tuple[Any, ...] = (
    Order.id,
    Order.status,
    Order.placed_at,
    Order.is_paid,
    Order.charge_status,
    Order.total_refunded,
    Order.voucher_code,
    OrderLine.id,
    OrderLine.product_id,
    OrderLine.product_name,
    OrderLine.sku,
    OrderLine.category_id,
    OrderLine.category_name,
    OrderLine.category_slug,
)
_ORDERS = (
    select(*ORDER_WITH_LINES)
    .outerjoin(OrderLine, OrderLine.order_id == Order.id)
    .where(Order.profile_id == _PROFILE)
    .order_by(Order.id)
)
_CHECKOUTS = select(Checkout.state, Checkout.lines_count, Checkout.source_updated_at).where(
    Checkout.profile_id == _PROFILE
)
_LABELS = union_all(
    select(literal("tag"), ProfileTag.tag).where(ProfileTag.profile_id == _PROFILE),
    select(literal("consent"), type_coerce(Identity.kind, String)).where(
        Identity.profile_id == _PROFILE,
        Identity.marketing_consent == ConsentState.GRANTED,
    ),
    select(literal("segment"), Segment.key)
    .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
    .where(SegmentMembership.profile_id == _PROFILE),
)


_PROFILE_ROW = select(*Profile.__table__.columns).where(Profile.id == _PROFILE)


async def load_facts(session: AsyncSession, profile: Profile) -> ProfileFacts:
    """Three queries (orders with their lines; carts; tags, consents and segments in one),
    reading columns rather than ORM objects: this runs for every customer on every fold."""
    await session.flush()  # the reads below go past the ORM: pending changes first
    attributes = {name: getattr(profile, name) for name in PROFILE_COLUMNS}
    return await _facts(await session.connection(), profile.id, attributes)


async def load_facts_by_id(session: AsyncSession, profile_id: int) -> ProfileFacts | None:
    """`load_facts` for a customer the session may not hold: the profile's own columns are
    read as one row instead of building an ORM object (None when there is no such profile)."""
    await session.flush()
    held = session.identity_map.get(identity_key(Profile, profile_id))
    if isinstance(held, Profile):
        return await load_facts(session, held)
    connection = await session.connection()
    row = (await connection.execute(_PROFILE_ROW, {"profile_id": profile_id})).first()
    if row is None:
        return None
    return await _facts(connection, profile_id, dict(row._mapping))


def orders_from_rows(
    rows: Iterable[Sequence[Any]], start: int = 0
) -> list[tuple[Sequence[Any], OrderFacts]]:
    """Rows holding ORDER_WITH_LINES from column `start`, grouped into one OrderFacts per
    order, each with the order's first row (for whatever columns precede `start`)."""
    heads: dict[int, Sequence[Any]] = {}
    lines: dict[int, list[LineFacts]] = {}
    for row in rows:
        order_id = row[start]
        heads.setdefault(order_id, row)
        if row[start + 7] is not None:
            at = start + 8
            lines.setdefault(order_id, []).append(
                LineFacts(row[at], row[at + 1], row[at + 2], row[at + 3], row[at + 4], row[at + 5])
            )
    return [
        (
            head,
            OrderFacts(
                head[start + 1],
                head[start + 2],
                head[start + 3],
                head[start + 4],
                head[start + 5],
                head[start + 6],
                tuple(lines.get(order_id, ())),
            ),
        )
        for order_id, head in heads.items()
    ]


async def _facts(
    connection: AsyncConnection, profile_id: int, attributes: dict[str, Any]
) -> ProfileFacts:
    # Core execution on the session's connection: these are column reads, the ORM's
    # result processing would only add time.
    params = {"profile_id": profile_id}
    orders = orders_from_rows(await connection.execute(_ORDERS, params))
    checkouts = await connection.execute(_CHECKOUTS, params)
    labels = await connection.execute(_LABELS, params)
    found: dict[str, set[str]] = {"tag": set(), "consent": set(), "segment": set()}
    for kind, value in labels:
        found[kind].add(IdentityKind[value].value if kind == "consent" else value)
    return ProfileFacts(
        attributes=attributes,
        orders=tuple(facts for _, facts in orders),
        checkouts=tuple(
            CheckoutFacts(state, count, changed) for state, count, changed in checkouts
        ),
        tags=frozenset(found["tag"]),
        consents=frozenset(found["consent"]),
        segments=found["segment"],
    )
