"""`customer` and `customers`: one profile by id, e-mail or Saleor user id; a filtered page."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy import ColumnElement, func, or_, select

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput
from plugin.api.fields import field as api_field
from plugin.api.ids import from_global_id
from plugin.api.pagination import (
    DEFAULT_PAGE_SIZE,
    Connection,
    SortKey,
    ValueKind,
    connection,
    encode_cursor,
    page_size,
)
from plugin.api.types.customer import Customer
from plugin.profiles.models import Identity, IdentityKind, Profile, ProfileTag
from plugin.segments.models import Segment, SegmentMembership

MAX_SEARCH_LENGTH = 256


@strawberry.enum
class CustomerSortField(enum.Enum):
    CREATED = "created"
    LAST_ORDER_AT = "last_order_at"
    FIRST_ORDER_AT = "first_order_at"
    TOTAL_SPENT = "total_spent"
    ORDERS_COUNT = "orders_count"
    SCORE = "score"
    EMAIL = "email"


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input
class CustomerSort:
    field: CustomerSortField
    direction: SortDirection = SortDirection.DESC


@strawberry.input(description="Every condition given must hold.")
class CustomerFilter:
    tags: list[str] | None = strawberry.field(default=None, description="Has all these tags.")
    countries: list[str] | None = None
    cities: list[str] | None = None
    rfm_cells: list[str] | None = None
    min_orders: int | None = None
    min_total_spent: Decimal | None = None
    min_score: int | None = None
    last_order_after: datetime | None = None
    last_order_before: datetime | None = None
    utm_source: str | None = None


# (column, cursor value kind, nullable); each has a `(installation_id, column, id)` index.
_SORTS: dict[CustomerSortField, tuple[Any, ValueKind, bool]] = {
    CustomerSortField.CREATED: (Profile.id, "int", False),
    CustomerSortField.LAST_ORDER_AT: (Profile.last_order_at, "datetime", True),
    CustomerSortField.FIRST_ORDER_AT: (Profile.first_order_at, "datetime", True),
    CustomerSortField.TOTAL_SPENT: (Profile.total_spent, "decimal", False),
    CustomerSortField.ORDERS_COUNT: (Profile.orders_count, "int", False),
    CustomerSortField.SCORE: (Profile.score, "int", True),
    CustomerSortField.EMAIL: (Profile.email, "str", True),
}


def sort_key(sort: CustomerSort | None) -> SortKey:
    sort = sort or CustomerSort(field=CustomerSortField.CREATED)
    column, kind, nullable = _SORTS[sort.field]
    descending = sort.direction is SortDirection.DESC
    return SortKey(column, Profile.id, kind, descending=descending, nullable=nullable)


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("Give a time zone (e.g. `Z`).", field=field)
    return value


def _prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def conditions(
    installation_id: int,
    filter: CustomerFilter | None,
    search: str | None,
    segment_id: int | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Profile.installation_id == installation_id]
    if search is not None and search.strip():
        if len(search) > MAX_SEARCH_LENGTH:
            raise InvalidInput("search is too long.", field="search")
        pattern = _prefix(search.strip())
        where.append(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (
                        Profile.email,
                        Profile.phone,
                        Profile.first_name,
                        Profile.last_name,
                    )
                )
            )
        )
    if segment_id is not None:
        where.append(
            Profile.id.in_(
                select(SegmentMembership.profile_id).where(
                    SegmentMembership.segment_id == segment_id
                )
            )
        )
    if filter is None:
        return where
    for tag in filter.tags or []:
        where.append(
            Profile.id.in_(
                select(ProfileTag.profile_id).where(
                    ProfileTag.installation_id == installation_id, ProfileTag.tag == tag
                )
            )
        )
    if filter.countries:
        where.append(Profile.country.in_([c.upper() for c in filter.countries]))
    if filter.cities:
        where.append(Profile.city.in_(filter.cities))
    if filter.rfm_cells:
        where.append(Profile.rfm_cell.in_(filter.rfm_cells))
    if filter.min_orders is not None:
        where.append(Profile.orders_count >= filter.min_orders)
    if filter.min_total_spent is not None:
        where.append(Profile.total_spent >= filter.min_total_spent)
    if filter.min_score is not None:
        where.append(Profile.score >= filter.min_score)
    if filter.last_order_after is not None:
        where.append(Profile.last_order_at >= _aware(filter.last_order_after, "lastOrderAfter"))
    if filter.last_order_before is not None:
        where.append(Profile.last_order_at < _aware(filter.last_order_before, "lastOrderBefore"))
    if filter.utm_source is not None:
        where.append(Profile.utm_source == filter.utm_source)
    return where


@strawberry.type
class CustomerQueries:
    @api_field(
        "One customer by id, e-mail or Saleor user id (exactly one). Needs "
        "MANAGE_USERS. Null when the shop has no such customer. An e-mail finds the "
        "customer holding it, whichever of their addresses it is (a former one, one they "
        "bought with as a guest)."
    )
    async def customer(
        self,
        info: Info,
        id: strawberry.ID | None = None,
        email: str | None = None,
        saleor_user_id: strawberry.ID | None = None,
    ) -> Customer | None:
        viewer = info.context.require(*permissions.CUSTOMERS)
        given = [v for v in (id, email, saleor_user_id) if v is not None]
        if len(given) != 1:
            raise InvalidInput("Give exactly one of id, email, saleorUserId.")
        statement = select(Profile).where(Profile.installation_id == viewer.installation_id)
        if id is not None:
            statement = statement.where(Profile.id == from_global_id("Customer", id))
        elif email is not None:
            value = email.strip().lower()
            holder = select(Identity.profile_id).where(
                Identity.installation_id == viewer.installation_id,
                Identity.kind == IdentityKind.EMAIL,
                Identity.value == value,
            )
            # The address's holder first; a profile merely showing it (never merged because
            # two Saleor accounts used it) after.
            statement = statement.where(
                or_(Profile.id.in_(holder), Profile.email == value)
            ).order_by(Profile.id.not_in(holder))
        else:
            statement = statement.where(Profile.saleor_user_id == saleor_user_id)
        profile = await info.context.scalars(statement.order_by(Profile.id).limit(1))
        return Customer.of(profile[0]) if profile else None

    @api_field(
        "A page of customers. `search` matches e-mail, phone and name prefixes; "
        "`segment` is a segment slug. Needs MANAGE_USERS."
    )
    async def customers(
        self,
        info: Info,
        filter: CustomerFilter | None = None,
        search: str | None = None,
        segment: str | None = None,
        sort_by: CustomerSort | None = None,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[Customer]:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        limit = page_size(first)
        key = sort_key(sort_by)
        segment_id = None
        if segment is not None:
            segment_id = await ctx.scalar(
                select(Segment.id).where(
                    Segment.installation_id == viewer.installation_id, Segment.key == segment
                )
            )
            if segment_id is None:
                segment_id = -1  # an unknown segment has no members
        where = conditions(viewer.installation_id, filter, search, segment_id)
        profiles: list[Profile] = []
        for part, order in key.parts(after):  # rows with a value, then (nullable) without
            wanted = limit + 1 - len(profiles)
            if wanted <= 0:
                break
            page = select(Profile).where(*where, *part).order_by(*order).limit(wanted)
            profiles += await ctx.scalars(page)

        async def count() -> int:
            return int(
                await ctx.scalar(select(func.count()).select_from(Profile).where(*where)) or 0
            )

        return connection(
            [(encode_cursor(getattr(p, key.column.key), p.id), Customer.of(p)) for p in profiles],
            limit=limit,
            after=after,
            count=count,
        )
