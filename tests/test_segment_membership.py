"""Segment membership that stays current: on every fold, and on the scheduled refresh."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from jobs.actors import has_waiting_segments
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments import membership
from plugin.segments.builtin import BUILTIN_SEGMENTS, ensure_builtin_segments
from plugin.segments.membership import (
    recompute_after_save,
    reevaluate_profiles,
    refresh_installation,
)
from plugin.segments.models import (
    RULE_CHANGED,
    Segment,
    SegmentDailyCount,
    SegmentMembership,
)
from plugin.timeline.models import TimelineEntry
from tests.conftest import RunningApp, eventually, new_installation
from tests.simulator import FakeShop

LINE = [("Mug", "MUG-1", "Kitchen", 1, 12.5)]


async def _segments_of(db: Database, installation_id: int, email: str) -> set[str]:
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.email == email
            )
        )
        if profile is None:
            return set()
        return set(
            await session.scalars(
                select(Segment.key)
                .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
                .where(SegmentMembership.profile_id == profile.id)
            )
        )


async def _timeline_kinds(db: Database, installation_id: int, email: str) -> list[str]:
    async with db.session() as session:
        profile = await session.scalar(
            select(Profile).where(
                Profile.installation_id == installation_id, Profile.email == email
            )
        )
        assert profile is not None
        entries = await session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.profile_id == profile.id)
            .order_by(TimelineEntry.id)
        )
        return [
            f"{e.kind}:{e.subject_id}" if e.subject_type == "segment" else e.kind for e in entries
        ]


async def test_install_creates_the_builtin_segments(db: Database, installation_id: int) -> None:
    async with db.session() as session:
        keys = set(
            await session.scalars(
                select(Segment.key).where(Segment.installation_id == installation_id)
            )
        )
    assert keys == {b.key for b in BUILTIN_SEGMENTS}
    async with unit_of_work(db) as session:  # idempotent: a re-install creates nothing
        assert await ensure_builtin_segments(session, installation_id) == []


async def test_each_fold_moves_the_customer_between_segments(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop(now=utcnow() - timedelta(hours=3))
    first = shop.create_order(email="seg@example.com", lines=LINE)
    events = first + shop.pay_order(first[0].object_id)
    for event in events:
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def one_time() -> bool:
        return "one_time_buyers" in await _segments_of(db, installation_id, "seg@example.com")

    await eventually(one_time)
    assert await _segments_of(db, installation_id, "seg@example.com") == {
        "new_customers",
        "one_time_buyers",
        "source-direct",  # no UTM on the order
        "big_spenders",  # the only buyer is the top 10 % of the shop
    }

    second = shop.create_order(email="seg@example.com", lines=LINE)
    for event in second + shop.pay_order(second[0].object_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def moved_on() -> bool:
        return "one_time_buyers" not in await _segments_of(db, installation_id, "seg@example.com")

    await eventually(moved_on)
    kinds = await _timeline_kinds(db, installation_id, "seg@example.com")
    assert "segment_entered:one_time_buyers" in kinds
    assert kinds.index("segment_entered:one_time_buyers") < kinds.index(
        "segment_left:one_time_buyers"
    )
    async with db.session() as session:
        count = await session.scalar(
            select(Segment.member_count).where(
                Segment.installation_id == installation_id, Segment.key == "one_time_buyers"
            )
        )
    assert count == 0


async def test_abandoned_checkout_enters_and_leaves_with_the_order(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop(now=utcnow() - timedelta(hours=2))
    cart = shop.create_checkout(email="cart@example.com", lines=LINE)
    assert (await saleor.adeliver(app_server.base_url, cart[0])).status_code == 200

    async def abandoned() -> bool:
        return "abandoned_checkout" in await _segments_of(db, installation_id, "cart@example.com")

    await eventually(abandoned)  # untouched for two hours, contact known, items in it
    for event in shop.complete_checkout(cart[0].object_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def recovered() -> bool:
        return "abandoned_checkout" not in await _segments_of(
            db, installation_id, "cart@example.com"
        )

    await eventually(recovered)


async def test_scheduled_refresh_flips_time_driven_rules_and_writes_only_changes(
    db: Database,
) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        dozing = Profile(
            installation_id=installation_id,
            email="dozing@example.com",
            orders_count=1,
            paid_orders_count=1,
            total_spent=Decimal("40"),
            first_order_at=now - timedelta(days=89, hours=12),
            last_order_at=now - timedelta(days=89, hours=12),
        )
        session.add(dozing)
    async with unit_of_work(db) as session:
        today = await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert today["one_time_buyers"].entered == [dozing.id]
    assert not today["sleeping"]

    tomorrow = now + timedelta(days=1)
    async with unit_of_work(db) as session:
        changes = await refresh_installation(session, installation_id, tomorrow, dialect=db.dialect)
    assert changes["sleeping"].entered == [dozing.id]
    assert not any(c for key, c in changes.items() if key != "sleeping")  # nothing else moved

    async with unit_of_work(db) as session:
        again = await refresh_installation(session, installation_id, tomorrow, dialect=db.dialect)
    assert not any(again.values())

    async with db.session() as session:
        counts = {
            (row.day, row.members)
            for row in await session.scalars(
                select(SegmentDailyCount)
                .join(Segment, Segment.id == SegmentDailyCount.segment_id)
                .where(Segment.key == "sleeping", Segment.installation_id == installation_id)
            )
        }
    assert counts == {(now.date(), 0), (tomorrow.date(), 1)}


async def test_reevaluating_one_customer_matches_the_full_refresh(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        people = [
            Profile(
                installation_id=installation_id,
                email=f"p{n}@example.com",
                orders_count=n,
                paid_orders_count=n,
                total_spent=Decimal(400 * n),
                first_order_at=now - timedelta(days=10 * n + 1) if n else None,
                last_order_at=now - timedelta(days=35 * n) if n else None,
            )
            for n in range(6)
        ]
        session.add_all(people)
    async with unit_of_work(db) as session:
        await reevaluate_profiles(session, installation_id, [p.id for p in people], now)
    async with db.session() as session:
        one_by_one = set(
            (m.segment_id, m.profile_id) for m in await session.scalars(select(SegmentMembership))
        )
    async with unit_of_work(db) as session:
        changes = await refresh_installation(session, installation_id, now, dialect=db.dialect)
    assert not any(changes.values())  # the full refresh finds nothing to change
    assert one_by_one


async def test_refresh_with_more_segments_than_one_mask_holds(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seventy segments (more than the 62 bits of one PostgreSQL mask) refreshed at once
    end with exactly the members the one-customer evaluator gives, counts included (and
    the statistics renewal after a bulk write runs inside the refresh's transaction)."""
    monkeypatch.setattr(membership, "ANALYZE_AFTER_ROWS", 1)
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        people = [
            Profile(
                installation_id=installation_id,
                email=f"m{n}@example.com",
                orders_count=n,
                paid_orders_count=n,
                total_spent=Decimal(100 * n),
                first_order_at=now - timedelta(days=n + 1) if n else None,
                last_order_at=now - timedelta(days=n) if n else None,
            )
            for n in range(8)
        ]
        session.add_all(people)
        for k in range(70):
            rule: dict[str, Any] = {"field": "orders_count", "op": "gte", "value": k % 9}
            if k % 2:
                rule = {"not": rule}
            session.add(
                Segment(installation_id=installation_id, key=f"s{k}", name=f"S{k}", rule=rule)
            )
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect, full=True)
    async with unit_of_work(db) as session:  # a second pass finds nothing to change
        again = await refresh_installation(
            session, installation_id, now, dialect=db.dialect, full=True
        )
    assert not any(again.values())
    async with db.session() as session:
        held = set(
            (segment_key, email)
            for segment_key, email in await session.execute(
                select(Segment.key, Profile.email)
                .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
                .join(Profile, Profile.id == SegmentMembership.profile_id)
                .where(Segment.installation_id == installation_id, Segment.key.like("s%"))
            )
        )
        counts = dict(
            (
                await session.execute(
                    select(Segment.key, Segment.member_count).where(
                        Segment.installation_id == installation_id, Segment.key.like("s%")
                    )
                )
            ).all()
        )
    expected = {
        (f"s{k}", f"m{n}@example.com")
        for k in range(70)
        for n in range(8)
        if (n >= k % 9) != bool(k % 2)
    }
    assert held == expected
    assert counts == {f"s{k}": sum(1 for key, _ in expected if key == f"s{k}") for k in range(70)}


async def test_a_large_shops_saved_segment_waits_for_the_scheduled_refresh(
    db: Database,
) -> None:
    """Above the inline limit, saving computes nothing in the request: a new segment waits
    unfilled (refreshed_at NULL), a changed rule waits marked RULE_CHANGED; the next
    scheduled refresh fills the first silently and reports who moved for the second."""
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        people = [
            Profile(
                installation_id=installation_id,
                email=f"w{n}@example.com",
                orders_count=n,
                paid_orders_count=n,
            )
            for n in range(4)
        ]
        session.add_all(people)
        segment = Segment(
            installation_id=installation_id,
            key="buyers",
            name="Buyers",
            rule={"field": "orders_count", "op": "gte", "value": 1},
        )
        session.add(segment)
        await session.flush()
        computed = await recompute_after_save(
            session, segment, now, dialect=db.dialect, inline_max=3, created=True
        )
    assert computed is False
    async with db.session() as session:
        assert await has_waiting_segments(session, installation_id)
        assert await _members_of(session, "buyers", installation_id) == set()
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, now, dialect=db.dialect)
    async with db.session() as session:
        assert not await has_waiting_segments(session, installation_id)
        assert await _members_of(session, "buyers", installation_id) == {
            "w1@example.com",
            "w2@example.com",
            "w3@example.com",
        }
    assert await _timeline_kinds(db, installation_id, "w1@example.com") == []  # a first fill

    later = now + timedelta(minutes=5)
    async with unit_of_work(db) as session:
        segment = await session.get_one(Segment, segment.id)
        segment.rule = {"field": "orders_count", "op": "gte", "value": 3}
        await recompute_after_save(
            session, segment, later, dialect=db.dialect, inline_max=3, created=False
        )
        assert segment.refreshed_at == RULE_CHANGED
    async with db.session() as session:
        assert await has_waiting_segments(session, installation_id)
    async with unit_of_work(db) as session:
        changes = await refresh_installation(session, installation_id, later, dialect=db.dialect)
    assert sorted(changes["buyers"].left) == sorted(p.id for p in people[1:3])
    assert await _timeline_kinds(db, installation_id, "w1@example.com") == ["segment_left:buyers"]
    async with unit_of_work(db) as session:  # at or under the limit: computed at once
        segment = await session.get_one(Segment, segment.id)
        segment.rule = {"field": "orders_count", "op": "gte", "value": 0}
        assert await recompute_after_save(
            session, segment, later, dialect=db.dialect, inline_max=4, created=False
        )
    async with db.session() as session:
        assert len(await _members_of(session, "buyers", installation_id)) == 4


async def _members_of(session: Any, key: str, installation_id: int) -> set[str]:
    return set(
        await session.scalars(
            select(Profile.email)
            .join(SegmentMembership, SegmentMembership.profile_id == Profile.id)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(Segment.installation_id == installation_id, Segment.key == key)
        )
    )
