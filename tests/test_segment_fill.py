"""Waiting segments computed in chunks of customers: the same members, moves and timeline
as computing them in one go, progress committed per chunk for others to read, and a crash
or a save mid-way leaving the segment waiting for a correct next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from jobs.actors import has_waiting_segments, refresh_shop
from plugin.commerce.models import Order
from plugin.db.engine import Database
from plugin.db.locks import hold_segment_fill
from plugin.importer.models import ImportRun, ImportStatus
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.builtin import ensure_builtin_segments
from plugin.segments.fill import fill_waiting
from plugin.segments.membership import Changes, recompute_after_save, refresh_installation
from plugin.segments.models import RULE_CHANGED, Segment, SegmentMembership
from plugin.segments.progress import Recompute, recompute_of
from plugin.timeline.models import TimelineEntry
from tests.api import gql, staff_headers
from tests.conftest import RunningApp, new_installation

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(minutes=5)
CUSTOMERS = 23
CHUNK = 4  # 23 customers: five chunks of 4, then a last one of 3
CUSTOM: dict[str, dict[str, Any]] = {
    "voucher_buyers": {"ordered": {"at_least": 1, "with_voucher": True}},  # order counts
    "top_third": {"top_percent": {"field": "total_spent", "percent": 30}},  # a threshold
    "paris": {"field": "city", "op": "eq", "value": "Paris"},
    # refers to two others: computed after them, one by one
    "loyal_voucher_buyers": {"all": [{"in_segment": "regulars"}, {"in_segment": "voucher_buyers"}]},
}
CHANGED: dict[str, dict[str, Any]] = {
    "voucher_buyers": {"ordered": {"at_least": 2, "with_voucher": True}},
    "paris": {"field": "orders_count", "op": "gte", "value": 2},
}
State = dict[str, tuple[frozenset[str], int]]


async def _shop(db: Database) -> int:
    """Built-in and custom segments, all waiting, over customers with varied figures."""
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        await ensure_builtin_segments(session, installation_id)
        for key, rule in CUSTOM.items():
            session.add(Segment(installation_id=installation_id, key=key, name=key, rule=rule))
        for n in range(CUSTOMERS):
            orders = n % 5
            profile = Profile(
                installation_id=installation_id,
                email=f"c{n}@example.com",
                city="Paris" if n % 3 == 0 else "Lyon",
                utm_source="google" if n % 4 == 0 else None,
                orders_count=orders,
                paid_orders_count=orders,
                currency="USD" if orders else None,
                total_spent=Decimal(37 * n % 500 if orders else 0),
                average_order_value=Decimal(37 * n % 500 // orders if orders else 0),
                first_order_at=NOW - timedelta(days=7 * n) if orders else None,
                last_order_at=NOW - timedelta(days=5 * n) if orders else None,
            )
            session.add(profile)
            await session.flush()
            for k in range(orders):
                session.add(
                    Order(
                        installation_id=installation_id,
                        saleor_id=f"o-{n}-{k}",
                        profile_id=profile.id,
                        status="FULFILLED",
                        is_paid=True,
                        charge_status="FULL",
                        voucher_code="SPRING" if (n + k) % 2 else None,
                        currency="USD",
                        placed_at=NOW - timedelta(days=5 * n + k),
                        source_updated_at=NOW,
                    )
                )
    return installation_id


async def _state(db: Database, installation_id: int) -> State:
    """Members (by e-mail) and the stored count of every computed segment; a segment
    still waiting has no place here."""
    async with db.session() as session:
        segments = list(
            await session.scalars(select(Segment).where(Segment.installation_id == installation_id))
        )
        state: State = {}
        for segment in segments:
            if segment.refreshed_at is None or segment.refreshed_at == RULE_CHANGED:
                continue
            emails = await session.scalars(
                select(Profile.email)
                .join(SegmentMembership, SegmentMembership.profile_id == Profile.id)
                .where(SegmentMembership.segment_id == segment.id)
            )
            state[segment.key] = (frozenset(e or "" for e in emails), segment.member_count)
        return state


async def _timeline(db: Database, installation_id: int) -> list[tuple[str, str, str]]:
    async with db.session() as session:
        rows = (
            await session.execute(
                select(TimelineEntry.kind, TimelineEntry.subject_id, Profile.email)
                .join(Profile, Profile.id == TimelineEntry.profile_id)
                .where(
                    TimelineEntry.installation_id == installation_id,
                    TimelineEntry.kind.in_(["segment_entered", "segment_left"]),
                )
            )
        ).all()
    return sorted((r[0], r[1] or "", r[2] or "") for r in rows)


async def _emails(db: Database, changes: dict[str, Changes]) -> dict[str, tuple[set[str], ...]]:
    async with db.session() as session:
        names = {r[0]: r[1] or "" for r in await session.execute(select(Profile.id, Profile.email))}
    return {
        key: ({names[i] for i in c.entered}, {names[i] for i in c.left})
        for key, c in changes.items()
    }


async def _in_one_go(db: Database, installation_id: int, now: datetime) -> dict[str, Changes]:
    async with unit_of_work(db) as session:
        return await refresh_installation(session, installation_id, now, dialect=db.dialect)


async def _tick(
    db: Database, installation_id: int, now: datetime, **options: Any
) -> dict[str, Changes]:
    """What the scheduled job does: the refresh without the waiting segments, then them
    in chunks."""
    async with unit_of_work(db) as session:
        await refresh_installation(
            session, installation_id, now, dialect=db.dialect, skip_waiting=True
        )
    return await fill_waiting(db, installation_id, now, chunk_size=CHUNK, **options)


async def _change_rules(
    db: Database, installation_id: int, now: datetime, keys: tuple[str, ...] = tuple(CHANGED)
) -> None:
    """Staff save new rules on a shop above the inline limit: they wait, RULE_CHANGED."""
    async with unit_of_work(db) as session:
        for key in keys:
            rule = CHANGED[key]
            segment = await session.scalar(
                select(Segment).where(
                    Segment.installation_id == installation_id, Segment.key == key
                )
            )
            assert segment is not None
            segment.rule = rule
            await recompute_after_save(
                session, segment, now, dialect=db.dialect, inline_max=0, created=False
            )
            assert segment.refreshed_at == RULE_CHANGED


async def test_a_fill_in_chunks_equals_one_go(db: Database) -> None:
    alone, chunked = await _shop(db), await _shop(db)
    await _in_one_go(db, alone, NOW)
    seen: list[Recompute] = []

    async def note(progress: Recompute) -> None:
        seen.append(progress)

    filled = await _tick(db, chunked, NOW, on_chunk=note)
    assert [p.done for p in seen] == [4, 8, 12, 16, 20, 23]
    assert {p.total for p in seen} == {CUSTOMERS}
    expected = await _state(db, alone)
    assert await _state(db, chunked) == expected
    assert set(filled) >= set(CUSTOM)
    assert all(not change.left for change in filled.values())
    for key in CUSTOM:  # the rules select someone, not everyone
        assert 0 < len(expected[key][0]) < CUSTOMERS, key
    assert await _timeline(db, chunked) == [] == await _timeline(db, alone)  # first fills

    await _change_rules(db, alone, LATER)
    await _change_rules(db, chunked, LATER)
    moved_alone = await _in_one_go(db, alone, LATER)
    moved = await _tick(db, chunked, LATER)
    assert set(moved) == set(CHANGED)
    assert await _emails(db, moved) == await _emails(db, {key: moved_alone[key] for key in CHANGED})
    assert any(moved[key] for key in CHANGED)
    # segments referring to a refilled one follow on the next tick, as time-driven ones do
    await _tick(db, chunked, LATER)
    assert await _state(db, chunked) == await _state(db, alone)
    timeline = await _timeline(db, chunked)
    assert timeline == await _timeline(db, alone)
    assert {kind for kind, _, _ in timeline} == {"segment_entered", "segment_left"}


async def test_progress_is_committed_per_chunk_for_other_sessions(db: Database) -> None:
    installation_id = await _shop(db)
    async with unit_of_work(db) as session:
        await refresh_installation(
            session, installation_id, NOW, dialect=db.dialect, skip_waiting=True
        )
        paris = await session.scalar(
            select(Segment).where(
                Segment.installation_id == installation_id, Segment.key == "paris"
            )
        )
        assert paris is not None
        waiting = recompute_of(paris, NOW)  # saved, not started: no total, no ETA
        assert waiting == Recompute(0, None, None, NOW)
        assert waiting.percent is None
        assert waiting.eta_seconds is None
    read: list[tuple[int | None, int | None, bool, bool, float | None]] = []

    async def look(progress: Recompute) -> None:
        async with db.session() as other:  # another connection, while the fill goes on
            row = await other.get_one(Segment, paris.id)
            mid = recompute_of(row, progress.now)
            read.append(
                (
                    row.recompute_done,
                    row.recompute_total,
                    row.recompute_started_at is not None,
                    row.refreshed_at is None,
                    None if mid is None else mid.percent,
                )
            )
            if mid is not None:
                assert mid.started_at is not None
                assert mid.eta_seconds is not None
                assert mid.eta_seconds >= 0
        async with hold_segment_fill(db, installation_id) as mine:
            assert not mine  # a second worker leaves the shop to this fill

    await fill_waiting(db, installation_id, NOW, chunk_size=CHUNK, on_chunk=look)
    mid_way = [(d, t, s, w, round(p or 0, 1)) for d, t, s, w, p in read[:-1]]
    assert mid_way == [
        (4, 23, True, True, 17.4),
        (8, 23, True, True, 34.8),
        (12, 23, True, True, 52.2),
        (16, 23, True, True, 69.6),
        (20, 23, True, True, 87.0),
    ]
    assert read[-1] == (None, None, False, False, None)  # done: computed, progress gone
    async with db.session() as session:
        assert not await has_waiting_segments(session, installation_id)


class Crash(Exception):
    pass


def _crash_after(chunks: int) -> Any:
    seen: list[Recompute] = []

    async def hook(progress: Recompute) -> None:
        seen.append(progress)
        if len(seen) == chunks:
            raise Crash

    return hook


async def test_a_crash_mid_way_leaves_segments_waiting_and_the_next_run_finishes(
    db: Database,
) -> None:
    alone, chunked = await _shop(db), await _shop(db)
    await _in_one_go(db, alone, NOW)
    with pytest.raises(Crash):
        await _tick(db, chunked, NOW, on_chunk=_crash_after(2))
    async with db.session() as session:
        assert await has_waiting_segments(session, chunked)
        paris = await session.scalar(
            select(Segment).where(Segment.installation_id == chunked, Segment.key == "paris")
        )
        assert paris is not None
        assert paris.refreshed_at is None
        assert (paris.recompute_done, paris.recompute_total) == (8, CUSTOMERS)
    assert await _state(db, chunked) == {}
    await fill_waiting(db, chunked, NOW, chunk_size=CHUNK)  # the next tick: from the start
    assert await _state(db, chunked) == await _state(db, alone)
    assert await _timeline(db, chunked) == []

    await _change_rules(db, alone, LATER)
    await _change_rules(db, chunked, LATER)
    await _in_one_go(db, alone, LATER)
    with pytest.raises(Crash):
        await _tick(db, chunked, LATER, on_chunk=_crash_after(3))
    async with db.session() as session:
        assert await has_waiting_segments(session, chunked)
    await _tick(db, chunked, LATER)
    await _tick(db, chunked, LATER)  # the referring segments' tick
    assert await _state(db, chunked) == await _state(db, alone)
    assert await _timeline(db, chunked) == await _timeline(db, alone)  # each move once


async def test_a_rule_saved_mid_way_is_computed_afresh_by_the_next_run(db: Database) -> None:
    alone, chunked = await _shop(db), await _shop(db)
    await _in_one_go(db, alone, NOW)
    await _in_one_go(db, chunked, NOW)
    await _change_rules(db, alone, LATER)
    await _in_one_go(db, alone, LATER)
    await _change_rules(db, chunked, LATER)
    first = {key: CUSTOM[key] for key in CHANGED}
    async with unit_of_work(db) as session:  # an older rule, being computed …
        await session.execute(
            update(Segment)
            .where(Segment.installation_id == chunked, Segment.key == "paris")
            .values(rule=first["paris"])
        )
    saved: list[int] = []

    async def save_again(progress: Recompute) -> None:
        if not saved:  # … when staff save the new one
            await _change_rules(db, chunked, LATER, keys=("paris",))
            saved.append(progress.done)

    moved = await _tick(db, chunked, LATER, on_chunk=save_again)
    assert "paris" not in moved
    assert "voucher_buyers" in moved
    async with db.session() as session:
        paris = await session.scalar(
            select(Segment).where(Segment.installation_id == chunked, Segment.key == "paris")
        )
        assert paris is not None
        assert paris.refreshed_at == RULE_CHANGED
        assert paris.recompute_started_at is None
    await _tick(db, chunked, LATER)
    await _tick(db, chunked, LATER)
    assert await _state(db, chunked) == await _state(db, alone)


RECOMPUTE = """query($s: String!) { segment(slug: $s) {
  refreshedAt recompute { done total percent startedAt etaSeconds } } }"""


async def test_the_api_shows_a_segment_being_computed(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    async with unit_of_work(db) as session:
        session.add(
            Segment(
                installation_id=installation_id,
                key="computing",
                name="Computing",
                rule={"field": "orders_count", "op": "gte", "value": 1},
            )
        )
    queued = await gql(app_server, RECOMPUTE, {"s": "computing"}, headers)
    assert queued.data["segment"] == {
        "refreshedAt": None,
        "recompute": {
            "done": 0,
            "total": None,
            "percent": None,
            "startedAt": None,
            "etaSeconds": None,
        },
    }
    started = datetime.now(UTC) - timedelta(seconds=60)
    async with unit_of_work(db) as session:  # as the job commits it after a chunk
        await session.execute(
            update(Segment)
            .where(Segment.installation_id == installation_id, Segment.key == "computing")
            .values(recompute_started_at=started, recompute_done=30, recompute_total=120)
        )
    mid_way = (await gql(app_server, RECOMPUTE, {"s": "computing"}, headers)).data["segment"]
    recompute = mid_way["recompute"]
    assert (recompute["done"], recompute["total"], recompute["percent"]) == (30, 120, 25.0)
    assert abs((datetime.fromisoformat(recompute["startedAt"]) - started).total_seconds()) < 0.01
    # 30 customers in a minute: 90 more take about three minutes
    assert 179 <= recompute["etaSeconds"] <= 190
    await fill_waiting(db, installation_id, datetime.now(UTC), chunk_size=CHUNK)
    done = (await gql(app_server, RECOMPUTE, {"s": "computing"}, headers)).data["segment"]
    assert done["recompute"] is None
    assert done["refreshedAt"] is not None


async def test_the_scheduled_job_fills_waiting_segments_even_on_a_fresh_shop(
    app_server: RunningApp, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = app_server.app.state.ctx
    monkeypatch.setattr(ctx.settings, "segments_fill_chunk", CHUNK)
    installation_id = await _shop(db)
    await refresh_shop(ctx, installation_id, NOW, NOW - timedelta(seconds=30))
    assert set(CUSTOM) <= set(await _state(db, installation_id))
    await _change_rules(db, installation_id, LATER)
    # refreshed at NOW, fresh at LATER: no whole refresh, but the saved rules go now
    await refresh_shop(ctx, installation_id, LATER, NOW - timedelta(seconds=1))
    async with db.session() as session:
        assert not await has_waiting_segments(session, installation_id)
    paris = (await _state(db, installation_id))["paris"][0]
    assert paris == {f"c{n}@example.com" for n in range(CUSTOMERS) if n % 5 >= 2}


async def test_the_scheduled_job_leaves_a_shop_alone_while_its_history_is_imported(
    app_server: RunningApp, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments computed from half the history would move customers back and forth; the
    import's end refreshes every segment. A run whose worker died does not hold it back."""
    ctx = app_server.app.state.ctx
    monkeypatch.setattr(ctx.settings, "segments_fill_chunk", CHUNK)
    installation_id = await _shop(db)
    async with unit_of_work(db) as session:
        run = ImportRun(
            installation_id=installation_id,
            requested_by="test",
            resources={},
            status=ImportStatus.RUNNING,
            heartbeat_at=NOW,
        )
        session.add(run)
        await session.flush()
        run_id = run.id

    await refresh_shop(ctx, installation_id, NOW, NOW - timedelta(seconds=30))
    async with db.session() as session:
        assert await has_waiting_segments(session, installation_id)

    async with unit_of_work(db) as session:  # the importing worker died two minutes ago
        await session.execute(
            update(ImportRun)
            .where(ImportRun.id == run_id)
            .values(heartbeat_at=NOW - timedelta(minutes=3))
        )
    await refresh_shop(ctx, installation_id, NOW, NOW - timedelta(seconds=30))
    async with db.session() as session:
        assert not await has_waiting_segments(session, installation_id)
