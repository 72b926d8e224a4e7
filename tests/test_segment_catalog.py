"""The folds' cached segment list follows every change of the rules, and only those."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments import catalog
from plugin.segments.membership import reevaluate_profiles
from plugin.segments.models import Segment, SegmentMembership
from tests.conftest import new_installation


async def _customer(db: Database, installation_id: int, spent: str) -> int:
    async with unit_of_work(db) as session:
        profile = Profile(
            installation_id=installation_id,
            email=f"cat-{spent}@example.com",
            currency="USD",
            orders_count=1,
            paid_orders_count=1,
            total_spent=Decimal(spent),
            field_times={},
        )
        session.add(profile)
        await session.flush()
        return profile.id


async def _member_of(db: Database, profile_id: int) -> set[str]:
    async with db.session() as session:
        return set(
            await session.scalars(
                select(Segment.key)
                .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
                .where(SegmentMembership.profile_id == profile_id)
            )
        )


async def _reevaluate(db: Database, installation_id: int, profile_id: int) -> None:
    async with unit_of_work(db) as session:
        await reevaluate_profiles(session, installation_id, [profile_id], utcnow())


async def test_rule_edits_new_and_deleted_segments_reach_the_next_fold(db: Database) -> None:
    installation_id = await new_installation(db)
    profile_id = await _customer(db, installation_id, "150")
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="spenders",
                name="Spenders",
                rule={"field": "total_spent", "op": "gte", "value": 100},
            )
        )
    await _reevaluate(db, installation_id, profile_id)
    assert await _member_of(db, profile_id) == {"spenders"}
    cached = catalog._cache[installation_id]

    # A membership written by a fold does not invalidate the list...
    await _reevaluate(db, installation_id, profile_id)
    assert catalog._cache[installation_id] is cached

    # ...an edited rule does, in whatever process it was saved.
    async with unit_of_work(db) as session:
        segment = await session.scalar(
            select(Segment).where(
                Segment.installation_id == installation_id, Segment.key == "spenders"
            )
        )
        assert segment is not None
        segment.rule = {"field": "total_spent", "op": "gte", "value": 500}
    await _reevaluate(db, installation_id, profile_id)
    assert await _member_of(db, profile_id) == set()

    # A new segment is seen at once, and a deleted one is no longer evaluated.
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="small",
                name="Small",
                rule={"field": "total_spent", "op": "lt", "value": 500},
            )
        )
    await _reevaluate(db, installation_id, profile_id)
    assert await _member_of(db, profile_id) == {"small"}
    async with unit_of_work(db) as session:
        await session.execute(
            delete(Segment).where(
                Segment.installation_id == installation_id, Segment.key == "small"
            )
        )
    await _reevaluate(db, installation_id, profile_id)
    assert [ref.key for ref, _, _ in catalog._cache[installation_id].items] == ["spenders"]


async def test_a_segment_saved_earlier_in_the_same_transaction_is_evaluated(
    db: Database,
) -> None:
    installation_id = await new_installation(db)
    profile_id = await _customer(db, installation_id, "80")
    await _reevaluate(db, installation_id, profile_id)  # caches the empty list
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="any_buyer",
                name="Any buyer",
                rule={"field": "orders_count", "op": "gte", "value": 1},
            )
        )
        changes = await reevaluate_profiles(session, installation_id, [profile_id], utcnow())
    assert changes["any_buyer"].entered == [profile_id]
