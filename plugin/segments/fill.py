"""Computing waiting segments chunk by chunk of customers, with progress others can read.

A segment saved on a large shop (or never computed) waits for the scheduled job; computed
in one transaction it showed only "being computed…" for minutes. Here the job takes the
shop's waiting segments together, one id range of customers at a time, each chunk in its
own short transaction that also commits `recompute_done` / `recompute_total` (with
`recompute_started_at`), from which the API derives a percentage and an ETA.

The result is that of computing in one go: a chunk writes only its customers' entered and
left memberships, every chunk uses the same `now` and the thresholds resolved once, and a
changed rule's moves reach the timeline (a first fill stays silent). A segment stays
waiting until the last chunk's transaction stamps `refreshed_at` and its count, so a crash
leaves it waiting and the next tick starts again (re-diffing chunks already done changes
nothing). Saving the rule again clears the progress columns: the fill drops that segment
and the next tick computes the new rule.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import hold_segment_fill, lock_installation
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.catalog import dependency_order, usable_rules
from plugin.segments.membership import (
    Changes,
    analyze_after_bulk,
    count_today,
    diff_segment,
    diff_together,
    note_many,
)
from plugin.segments.models import Segment, SegmentMembership, is_waiting
from plugin.segments.progress import Recompute
from plugin.segments.rules import Rule, segment_references
from plugin.segments.sql import IdRange, in_range
from plugin.segments.thresholds import resolve

OnChunk = Callable[[Recompute], Awaitable[None]]


@dataclass(frozen=True)
class _Planned:
    """A waiting segment as the fill found it: the rule it computes, thresholds resolved."""

    id: int
    key: str
    rule_text: str
    rule: Rule


async def fill_waiting(
    db: Database,
    installation_id: int,
    now: datetime,
    *,
    chunk_size: int,
    on_chunk: OnChunk | None = None,
) -> dict[str, Changes]:
    """Compute the shop's waiting segments in chunks of `chunk_size` customers; who
    entered and left each, by key. Nothing when none waits or another worker is on it.
    `on_chunk` runs after each chunk's commit (the CLI's progress bar, tests)."""
    async with hold_segment_fill(db, installation_id) as mine:
        if not mine:
            return {}
        async with unit_of_work(db) as session:
            await _begin(session, installation_id, db.dialect)
            plan, total = await _start(session, installation_id)
        if not plan:
            return {}
        return await _run(db, installation_id, plan, total, now, chunk_size, on_chunk)


async def _begin(session: AsyncSession, installation_id: int, dialect: str) -> None:
    """Each transaction of a fill holds the shop's fold lock: a fold waits for a chunk."""
    await lock_installation(session, installation_id)
    if dialect == "postgresql":  # as in refresh_installation: JIT compiles longer than this runs
        await session.execute(text("SET LOCAL jit = off"))


async def _start(session: AsyncSession, installation_id: int) -> tuple[list[_Planned], int]:
    """The waiting segments in dependency order, marked started with the customers to do."""
    segments = list(
        await session.scalars(
            select(Segment).where(Segment.installation_id == installation_id).order_by(Segment.id)
        )
    )
    rules = usable_rules(segments)
    waiting = [s for s in dependency_order(segments, rules) if is_waiting(s)]
    if not waiting:
        return [], 0
    total = int(
        await session.scalar(select(func.count()).where(Profile.installation_id == installation_id))
        or 0
    )
    plan = [
        _Planned(
            segment.id,
            segment.key,
            _text(segment),
            await resolve(session, installation_id, rules[segment.key], fresh=True),
        )
        for segment in waiting
    ]
    await _write_progress(session, [p.id for p in plan], 0, total, started_at=utcnow())
    return plan, total


async def _run(
    db: Database,
    installation_id: int,
    plan: list[_Planned],
    total: int,
    now: datetime,
    chunk_size: int,
    on_chunk: OnChunk | None,
) -> dict[str, Changes]:
    changes = {p.key: Changes() for p in plan}
    cursor, done, written = 0, 0, 0
    while True:
        async with unit_of_work(db) as session:
            await _begin(session, installation_id, db.dialect)
            live = await _still_waiting(session, plan)
            if not live:  # all saved again (or computed by another path) meanwhile
                return {}
            high = await _chunk_end(session, installation_id, cursor, chunk_size)
            chunk: IdRange = (cursor, high)
            done += await _count(session, installation_id, chunk)
            written += await _compute(session, live, now, chunk, changes, db.dialect)
            total = max(total, done)  # customers created meanwhile
            started_at = live[0][0].recompute_started_at or now
            if high is None:
                await _finish(session, [s for s, _ in live], now, written)
            else:
                await _write_progress(session, [s.id for s, _ in live], done, total)
        if on_chunk is not None:
            await on_chunk(Recompute(done, total, started_at, utcnow()))
        if high is None:
            return {segment.key: changes[segment.key] for segment, _ in live}
        cursor = high


async def _still_waiting(session: AsyncSession, plan: list[_Planned]) -> list[tuple[Segment, Rule]]:
    """The planned segments this fill still owns: not deleted, still waiting, same rule,
    progress not cleared by a save (a save starts its rule afresh on the next tick)."""
    rows = {
        s.id: s
        for s in await session.scalars(select(Segment).where(Segment.id.in_([p.id for p in plan])))
    }
    live: list[tuple[Segment, Rule]] = []
    for planned in plan:
        segment = rows.get(planned.id)
        if (
            segment is not None
            and is_waiting(segment)
            and segment.recompute_started_at is not None
            and _text(segment) == planned.rule_text
        ):
            live.append((segment, planned.rule))
    return live


async def _chunk_end(
    session: AsyncSession, installation_id: int, cursor: int, chunk_size: int
) -> int | None:
    """The id closing the next chunk of `chunk_size` customers after `cursor`; None when
    fewer remain (the last chunk then takes every id above, customers created meanwhile
    too)."""
    return await session.scalar(
        select(Profile.id)
        .where(Profile.installation_id == installation_id, Profile.id > cursor)
        .order_by(Profile.id)
        .offset(max(chunk_size, 1) - 1)
        .limit(1)
    )


async def _count(session: AsyncSession, installation_id: int, chunk: IdRange) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Profile.installation_id == installation_id, in_range(Profile.id, chunk)
            )
        )
        or 0
    )


async def _compute(
    session: AsyncSession,
    live: list[tuple[Segment, Rule]],
    now: datetime,
    chunk: IdRange,
    changes: dict[str, Changes],
    dialect: str,
) -> int:
    """One chunk of every live segment, as `refresh_installation` orders them: those that
    refer to no other together, then the others one by one. Membership rows written."""
    independent = [(s, r) for s, r in live if not segment_references(r)]
    found, _ = await diff_together(session, independent, now, dialect=dialect, profiles=chunk)
    moved: list[tuple[Segment, Changes]] = [(s, found[s.id]) for s, _ in independent]
    for segment, rule in live:
        if segment_references(rule):
            change = await diff_segment(
                session, segment, rule, now, dialect=dialect, profiles=chunk
            )
            moved.append((segment, change))
    written = 0
    for segment, change in moved:
        if segment.refreshed_at is not None:  # a changed rule; a first fill is silent
            await note_many(session, segment, change, now)
        changes[segment.key].entered += change.entered
        changes[segment.key].left += change.left
        written += len(change.entered) + len(change.left)
    return written


async def _write_progress(
    session: AsyncSession,
    ids: list[int],
    done: int,
    total: int,
    *,
    started_at: datetime | None = None,
) -> None:
    values: dict[str, object] = {"recompute_done": done, "recompute_total": total}
    if started_at is not None:
        values["recompute_started_at"] = started_at
    await session.execute(
        update(Segment)
        .where(Segment.id.in_(ids))
        # updated_at stays: it stamps the rules the folds cache (catalog.py)
        .values(**values, updated_at=Segment.updated_at)
        .execution_options(synchronize_session=False)
    )


async def _finish(
    session: AsyncSession, segments: list[Segment], now: datetime, written: int
) -> None:
    """The last chunk's transaction: counts, stamps and the daily history, progress gone."""
    await analyze_after_bulk(session, written)
    counts = dict(
        (
            await session.execute(
                select(SegmentMembership.segment_id, func.count())
                .where(SegmentMembership.segment_id.in_([s.id for s in segments]))
                .group_by(SegmentMembership.segment_id)
            )
        ).all()
    )
    for segment in segments:
        segment.member_count = int(counts.get(segment.id, 0))
        segment.refreshed_at = now
        segment.recompute_started_at = None
        segment.recompute_done = None
        segment.recompute_total = None
    await count_today(session, segments, now)
    await session.flush()


def _text(segment: Segment) -> str:
    return json.dumps(segment.rule, sort_keys=True)
