"""Staff merging two customers by hand: what would move and which values would win,
then the merge itself with the survivor's figures and segments brought up to date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, Order
from plugin.notes.models import Note
from plugin.profiles.aggregates import recompute
from plugin.profiles.fields import PROFILE_FIELDS, take_newer_fields
from plugin.profiles.merge import merge_profiles
from plugin.profiles.models import Identity, Profile, ProfileTag
from plugin.segments.membership import reevaluate_profiles


class DifferentPeople(Exception):
    """Both profiles belong to Saleor users, and not the same one."""


@dataclass(frozen=True)
class FieldChoice:
    field: str
    value: Any
    source: bool  # True when the merged-away profile's value wins


@dataclass(frozen=True)
class MergePlan:
    orders: int
    checkouts: int
    identities: int
    notes: int
    tags: int  # tags the target gains (shared ones are kept once)
    fields: list[FieldChoice]


def check_mergeable(source: Profile, target: Profile) -> None:
    users = (source.saleor_user_id, target.saleor_user_id)
    if all(users) and users[0] != users[1]:
        raise DifferentPeople("Both customers are different Saleor users.")


async def _count(session: AsyncSession, model: Any, profile_id: int) -> int:
    counted = await session.scalar(
        select(func.count()).select_from(model).where(model.profile_id == profile_id)
    )
    return int(counted or 0)


def field_choices(source: Profile, target: Profile) -> list[FieldChoice]:
    """The values the target would hold, decided as the merge decides (newest wins)."""
    trial = Profile(field_times=dict(target.field_times or {}))
    for name in PROFILE_FIELDS:
        setattr(trial, name, getattr(target, name))
    take_newer_fields(trial, source)
    choices = []
    for name in sorted(PROFILE_FIELDS):
        ours, theirs = getattr(target, name), getattr(source, name)
        if ours == theirs:
            continue
        kept = getattr(trial, name)
        choices.append(FieldChoice(field=name, value=kept, source=kept != ours))
    return choices


async def plan_merge(session: AsyncSession, source: Profile, target: Profile) -> MergePlan:
    check_mergeable(source, target)
    held = select(ProfileTag.tag).where(ProfileTag.profile_id == target.id)
    gained = await session.scalar(
        select(func.count())
        .select_from(ProfileTag)
        .where(ProfileTag.profile_id == source.id, ProfileTag.tag.not_in(held))
    )
    return MergePlan(
        orders=await _count(session, Order, source.id),
        checkouts=await _count(session, Checkout, source.id),
        identities=await _count(session, Identity, source.id),
        notes=await _count(session, Note, source.id),
        tags=int(gained or 0),
        fields=field_choices(source, target),
    )


async def merge_into(
    session: AsyncSession, source: Profile, target: Profile, now: datetime
) -> Profile:
    """Merge `source` into `target`, which survives; figures and segments follow."""
    check_mergeable(source, target)
    survivor = await merge_profiles(session, source, target, now, keep=target)
    await recompute(session, survivor)
    await reevaluate_profiles(session, survivor.installation_id, [survivor.id], now)
    return survivor
