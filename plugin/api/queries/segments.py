"""`segments`, `segment(slug)` and `segmentPreview(rules)`."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput
from plugin.api.fields import field as api_field
from plugin.api.types.customer import Customer
from plugin.api.types.segment import Segment, SegmentPreview
from plugin.profiles.models import Profile
from plugin.segments import models
from plugin.segments.rules import Rule, RuleError, parse_rule
from plugin.segments.sql import members_query
from plugin.segments.thresholds import resolve

PREVIEW_SAMPLE = 10


def parsed_rule(raw: Any, field: str = "rules") -> Rule:
    """The rule, or INVALID_INPUT naming the JSON path of the offending part."""
    try:
        return parse_rule(raw)
    except RuleError as error:
        raise InvalidInput(error.message, field=field, rulePath=error.path) from None


@strawberry.type
class SegmentQueries:
    @api_field("Every segment of the shop, by name. Needs MANAGE_USERS.")
    async def segments(self, info: Info) -> list[Segment]:
        viewer = info.context.require(*permissions.CUSTOMERS)
        rows = await info.context.scalars(
            select(models.Segment)
            .where(models.Segment.installation_id == viewer.installation_id)
            .order_by(models.Segment.name, models.Segment.id)
        )
        return [Segment.of(row) for row in rows]

    @api_field("One segment by slug; null when there is none.")
    async def segment(self, info: Info, slug: str) -> Segment | None:
        viewer = info.context.require(*permissions.CUSTOMERS)
        rows = await info.context.scalars(
            select(models.Segment).where(
                models.Segment.installation_id == viewer.installation_id,
                models.Segment.key == slug,
            )
        )
        return Segment.of(rows[0]) if rows else None

    @api_field("How many customers a rule selects now, and a few of them.")
    async def segment_preview(self, info: Info, rules: JSON) -> SegmentPreview:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        parsed = parsed_rule(rules)

        async def resolved(session: AsyncSession) -> Rule:
            return await resolve(session, viewer.installation_id, parsed)

        members = members_query(
            await ctx.run(resolved),
            installation_id=viewer.installation_id,
            now=ctx.now,
            dialect=ctx.dialect,
        ).subquery()
        count = await ctx.scalar(select(func.count()).select_from(members))
        sample = await ctx.scalars(
            select(Profile)
            .where(Profile.id.in_(select(members.c.id)))
            .order_by(Profile.id.desc())
            .limit(PREVIEW_SAMPLE)
        )
        return SegmentPreview(count=int(count or 0), sample=[Customer.of(p) for p in sample])
