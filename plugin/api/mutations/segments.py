"""Creating, editing and deleting segments (configuration: MANAGE_USERS + MANAGE_APPS).

A new or changed rule is evaluated for the whole base at once, so the answer already
shows the segment's members.
"""

from __future__ import annotations

import re
from typing import Any, cast

import strawberry
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.auth import Viewer
from plugin.api.context import ApiContext, Info
from plugin.api.errors import Conflict, InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.queries.segments import parsed_rule
from plugin.api.types.segment import Segment
from plugin.segments import models
from plugin.segments.membership import check_references, recompute_after_save
from plugin.segments.rules import RuleError, parse_rule

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@strawberry.input
class SegmentCreateInput:
    slug: str = strawberry.field(description="Lower-case letters, digits, `-` and `_`.")
    name: str
    description: str = ""
    rules: JSON


@strawberry.input
class SegmentUpdateInput:
    name: str | None = None
    description: str | None = None
    rules: JSON | None = None


@strawberry.type
class SegmentDeleted:
    slug: str


async def _recompute(
    ctx: ApiContext, session: AsyncSession, segment: models.Segment, *, created: bool
) -> None:
    """Members now, or by the next scheduled refresh on a large shop."""
    await recompute_after_save(
        session,
        segment,
        ctx.now,
        dialect=ctx.dialect,
        inline_max=ctx.app.settings.segments_inline_fill_max,
        created=created,
    )


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 256:
        raise InvalidInput("A name has 1 to 256 characters.", field="name")
    return name


async def _check_references(
    session: AsyncSession, viewer: Viewer, slug: str, raw: dict[str, Any]
) -> None:
    """`in_segment` must name existing segments, without cycles."""
    try:
        await check_references(session, viewer.installation_id, slug, parse_rule(raw))
    except RuleError as error:
        raise InvalidInput(error.message, field="rules", rulePath=error.path) from None


async def _segment(session: AsyncSession, viewer: Viewer, slug: str) -> models.Segment:
    segment = await session.scalar(
        select(models.Segment).where(
            models.Segment.installation_id == viewer.installation_id, models.Segment.key == slug
        )
    )
    if segment is None:
        raise NotFound(f"No segment {slug!r}.", field="slug")
    return segment


@strawberry.type
class SegmentMutations:
    @api_mutation("Create a segment and fill it.")
    async def segment_create(self, info: Info, input: SegmentCreateInput) -> Segment:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        if not SLUG.match(input.slug):
            raise InvalidInput("A slug is 1-64 of a-z, 0-9, `-`, `_`.", field="slug")
        name = _name(input.name)
        parsed_rule(input.rules)
        rule = cast(dict[str, Any], input.rules)  # parse_rule accepts only objects
        try:
            async with ctx.write() as session:
                exists = await session.scalar(
                    select(models.Segment.id).where(
                        models.Segment.installation_id == viewer.installation_id,
                        models.Segment.key == input.slug,
                    )
                )
                if exists is not None:
                    raise Conflict(f"A segment {input.slug!r} exists already.", field="slug")
                segment = models.Segment(
                    installation_id=viewer.installation_id,
                    key=input.slug,
                    name=name,
                    description=input.description,
                    rule=rule,
                    builtin=False,
                )
                await _check_references(session, viewer, input.slug, rule)
                session.add(segment)
                await session.flush()
                await _recompute(ctx, session, segment, created=True)
        except IntegrityError:  # created by a concurrent request between check and insert
            raise Conflict(f"A segment {input.slug!r} exists already.", field="slug") from None
        return Segment.of(segment)

    @api_mutation("Rename, describe or change the rule of a segment.")
    async def segment_update(self, info: Info, slug: str, input: SegmentUpdateInput) -> Segment:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        name = _name(input.name) if input.name is not None else None
        rule = None
        if input.rules is not None:
            parsed_rule(input.rules)
            rule = cast(dict[str, Any], input.rules)
        async with ctx.write() as session:
            segment = await _segment(session, viewer, slug)
            if name is not None:
                segment.name = name
            if input.description is not None:
                segment.description = input.description
            if rule is not None and rule != segment.rule:
                await _check_references(session, viewer, slug, rule)
                segment.rule = rule
                await session.flush()
                await _recompute(ctx, session, segment, created=False)
            await session.flush()
        return Segment.of(segment)

    @api_mutation("Delete a segment you made (built-in ones stay).")
    async def segment_delete(self, info: Info, slug: str) -> SegmentDeleted:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        async with ctx.write() as session:
            segment = await _segment(session, viewer, slug)
            if segment.builtin:
                raise Conflict(
                    "Built-in segments cannot be deleted; edit their rule.", field="slug"
                )
            await session.delete(segment)
        return SegmentDeleted(slug=slug)
