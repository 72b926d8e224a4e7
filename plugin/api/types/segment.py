"""Segments: a stored rule, its members and the daily history of its size."""

from __future__ import annotations

import json
from datetime import date, datetime

import strawberry
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.ids import to_global_id
from plugin.api.loaders import MEMBER_SORT
from plugin.api.pagination import (
    DEFAULT_PAGE_SIZE,
    Connection,
    connection,
    encode_cursor,
    page_size,
)
from plugin.api.types.customer import Customer
from plugin.db.base import utcnow
from plugin.segments import models
from plugin.segments.describe import describe
from plugin.segments.models import RULE_CHANGED
from plugin.segments.progress import Recompute, recompute_of
from plugin.segments.rules import RuleError, parse_rule

MAX_HISTORY_DAYS = 366


@strawberry.type
class SegmentCount:
    day: date
    members: int


@strawberry.type(
    description="A segment being computed: a saved rule waiting for the scheduled job, "
    "which goes through the shop's customers in chunks and commits its progress after each."
)
class SegmentRecompute:
    done: int = strawberry.field(description="Customers computed so far.")
    total: int | None = strawberry.field(
        description="Customers to compute; null until the job has started."
    )
    percent: float | None = strawberry.field(
        description="done ÷ total × 100 (0–100); null until the job has started."
    )
    started_at: datetime | None = strawberry.field(
        description="When the job started; null while the segment waits for the next tick "
        "of the scheduled refresh."
    )
    eta_seconds: float | None = strawberry.field(
        description="Seconds left at the pace so far; null until a first chunk is done."
    )

    @classmethod
    def of(cls, progress: Recompute) -> SegmentRecompute:
        return cls(
            done=progress.done,
            total=progress.total,
            percent=progress.percent,
            started_at=progress.started_at,
            eta_seconds=progress.eta_seconds,
        )


@strawberry.type
class Segment:
    pk: strawberry.Private[int]
    slug: str
    name: str
    description: str
    rules: JSON = strawberry.field(description="The rule tree (see the segment rule language).")
    builtin: bool = strawberry.field(description="Built-in segments can be edited, not deleted.")
    member_count: int
    refreshed_at: datetime | None = strawberry.field(
        description="When the members were last computed; null while a saved rule waits "
        "for its computation (a large shop's is left to the next scheduled refresh)."
    )
    recompute: SegmentRecompute | None = strawberry.field(
        description="How far the computation of the saved rule is; null when the members "
        "are computed (refreshedAt is set)."
    )

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Segment", self.pk))

    @api_field("The rule in words.")
    def summary(self) -> str:
        try:
            return describe(parse_rule(self.rules))
        except RuleError:
            return json.dumps(self.rules)

    @api_field("Member count per day, oldest first.")
    async def count_history(self, info: Info, days: int = 30) -> list[SegmentCount]:
        days = max(1, min(days, MAX_HISTORY_DAYS))
        rows = await info.context.loaders.count_history.load((self.pk, days))
        return [SegmentCount(day=r.day, members=r.members) for r in rows]

    @api_field("Newest members first.")
    async def members(
        self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Customer]:
        info.context.require(*permissions.CUSTOMERS)
        limit = page_size(first)
        if after is not None:
            MEMBER_SORT.after(after)
        rows = await info.context.loaders.members.load((self.pk, limit + 1, after))
        return connection(
            [(encode_cursor(m, m), Customer.of(p)) for p, m in rows], limit=limit, after=after
        )

    @classmethod
    def of(cls, segment: models.Segment) -> Segment:
        progress = recompute_of(segment, utcnow())
        return cls(
            pk=segment.id,
            slug=segment.key,
            name=segment.name,
            description=segment.description,
            rules=JSON(segment.rule),
            builtin=segment.builtin,
            member_count=segment.member_count,
            # a rule changed and waiting for the scheduled refresh is not "computed in 1970"
            refreshed_at=None if segment.refreshed_at == RULE_CHANGED else segment.refreshed_at,
            recompute=None if progress is None else SegmentRecompute.of(progress),
        )


@strawberry.type(description="What a rule would select, before it is saved.")
class SegmentPreview:
    count: int
    sample: list[Customer]
