"""Merging two profiles of one person. Everything moves to the survivor; consent stays on
each identity, so a merge never gives one address the consent another address gave."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, Fulfillment, Order
from plugin.notes.models import Note
from plugin.profiles.fields import apply_source, take_newer_fields
from plugin.profiles.models import Identity, Profile, ProfileTag, ProfileTotal
from plugin.profiles.movers import movers
from plugin.segments.models import Segment, SegmentMembership
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record

SOURCE_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
)


def _newer(a: datetime | None, b: datetime | None) -> bool:
    """Is `b` strictly newer than `a`?"""
    return b is not None and (a is None or b > a)


def _survivor(a: Profile, b: Profile) -> tuple[Profile, Profile]:
    """The profile holding a Saleor user survives; otherwise the older one."""
    if bool(b.saleor_user_id) != bool(a.saleor_user_id):
        return (b, a) if b.saleor_user_id else (a, b)
    return (a, b) if a.id < b.id else (b, a)


def _take_fields(winner: Profile, loser: Profile) -> None:
    take_newer_fields(winner, loser)
    if loser.source_at is not None:
        apply_source(
            winner, loser.source_at, {name: getattr(loser, name) for name in SOURCE_FIELDS}
        )
    if _newer(winner.customer_updated_at, loser.customer_updated_at):
        winner.customer_updated_at = loser.customer_updated_at
    if _newer(winner.saleor_deleted_at, loser.saleor_deleted_at):
        winner.saleor_deleted_at = loser.saleor_deleted_at
    winner.saleor_user_id = winner.saleor_user_id or loser.saleor_user_id


async def _move_tags(session: AsyncSession, winner: Profile, loser: Profile) -> None:
    """Staff labels follow the person; a tag both profiles carry is kept once."""
    held = select(ProfileTag.tag).where(ProfileTag.profile_id == winner.id)
    await session.execute(
        update(ProfileTag)
        .where(ProfileTag.profile_id == loser.id, ProfileTag.tag.not_in(held))
        .values(profile_id=winner.id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(ProfileTag).where(ProfileTag.profile_id == loser.id))


async def _drop_memberships(session: AsyncSession, loser: Profile) -> None:
    """The duplicate leaves its segments with the counts kept right; the survivor is
    re-evaluated by the fold that caused the merge."""
    left = await session.scalars(
        delete(SegmentMembership)
        .where(SegmentMembership.profile_id == loser.id)
        .returning(SegmentMembership.segment_id)
    )
    for segment_id in list(left):
        await session.execute(
            update(Segment)
            .where(Segment.id == segment_id)
            .values(member_count=Segment.member_count - 1, updated_at=Segment.updated_at)
            .execution_options(synchronize_session=False)
        )


async def merge_profiles(
    session: AsyncSession,
    a: Profile,
    b: Profile,
    observed_at: datetime,
    *,
    keep: Profile | None = None,
) -> Profile:
    """Fold one profile into the other and return the survivor (`keep` when staff chose)."""
    if keep is not None:
        winner, loser = (a, b) if keep is a else (b, a)
    else:
        winner, loser = _survivor(a, b)
    identities = list(
        await session.scalars(select(Identity).where(Identity.profile_id == loser.id))
    )
    for table in (Identity, Order, Checkout, Fulfillment, TimelineEntry, Note):
        await session.execute(
            update(table).where(table.profile_id == loser.id).values(profile_id=winner.id)
        )
    for _, mover in movers():  # other packages' rows about the person
        await mover(session, winner.id, loser.id)
    await session.execute(delete(ProfileTotal).where(ProfileTotal.profile_id == loser.id))
    await _move_tags(session, winner, loser)
    await _drop_memberships(session, loser)
    _take_fields(winner, loser)
    await session.delete(loser)
    await session.flush()
    await record(
        session,
        installation_id=winner.installation_id,
        profile_id=winner.id,
        kind="profile_merged",
        occurred_at=observed_at,
        subject_type="profile",
        subject_id=str(loser.id),
        summary="Merged with a duplicate profile ("
        + ", ".join(f"{i.kind.value} {i.value}" for i in identities)
        + ")",
        data={"merged_profile_id": loser.id, "identities": [i.value for i in identities]},
        dedup_key=f"merge:{winner.id}:{loser.id}",
    )
    return winner
