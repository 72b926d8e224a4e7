"""What the single-profile evaluator needs to know about one customer, loaded in 6 queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.profiles.aggregates import NOT_PLACED, PAID_CHARGE_STATUSES
from plugin.profiles.models import ConsentState, Identity, Profile, ProfileTag
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


async def load_facts(session: AsyncSession, profile: Profile) -> ProfileFacts:
    orders = list(await session.scalars(select(Order).where(Order.profile_id == profile.id)))
    lines: dict[int, list[LineFacts]] = {}
    if orders:
        for line in await session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_([o.id for o in orders]))
        ):
            lines.setdefault(line.order_id, []).append(
                LineFacts(
                    line.product_id,
                    line.product_name,
                    line.sku,
                    line.category_id,
                    line.category_name,
                    line.category_slug,
                )
            )
    checkouts = await session.scalars(select(Checkout).where(Checkout.profile_id == profile.id))
    tags = await session.scalars(select(ProfileTag.tag).where(ProfileTag.profile_id == profile.id))
    consents = await session.scalars(
        select(Identity.kind).where(
            Identity.profile_id == profile.id,
            Identity.marketing_consent == ConsentState.GRANTED,
        )
    )
    segments = await session.scalars(
        select(Segment.key)
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(SegmentMembership.profile_id == profile.id)
    )
    return ProfileFacts(
        attributes={name: getattr(profile, name) for name in PROFILE_COLUMNS},
        orders=tuple(
            OrderFacts(
                o.status,
                o.placed_at,
                o.is_paid,
                o.charge_status,
                o.total_refunded,
                o.voucher_code,
                tuple(lines.get(o.id, ())),
            )
            for o in orders
        ),
        checkouts=tuple(
            CheckoutFacts(c.state, c.lines_count, c.source_updated_at) for c in checkouts
        ),
        tags=frozenset(tags),
        consents=frozenset(str(kind) for kind in consents),
        segments=set(segments),
    )
