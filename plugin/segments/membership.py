"""Keeping segment membership current: one customer on every fold, everyone on a schedule.

Only changes are written: a customer entering gets a membership row and a
`segment_entered` timeline entry, one leaving loses the row and gets `segment_left`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.profiles.models import Profile
from plugin.scoring import service as scoring
from plugin.segments.builtin import ensure_source_segments
from plugin.segments.catalog import (
    SegmentLike,
    compiled_rule,
    dependency_order,
    segments_for_fold,
    usable_rules,
)
from plugin.segments.diff_postgres import WORK_MEM, diff_with_masks
from plugin.segments.evaluate import matches
from plugin.segments.facts import load_facts_by_id
from plugin.segments.models import (
    RULE_CHANGED,
    Segment,
    SegmentDailyCount,
    SegmentMembership,
    is_waiting,
)
from plugin.segments.rfm import refresh_rfm
from plugin.segments.rules import (
    Rule,
    RuleError,
    changes_with_time,
    segment_references,
)
from plugin.segments.sql import IdRange, compile_rule, in_range, members_query
from plugin.segments.thresholds import Book, book_key, compute_many, resolve, top_percents
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record

logger = logging.getLogger(__name__)

# Per database connection (temporary), emptied before each use.
WANTED = Table(
    "crm_segment_wanted",
    MetaData(),
    Column("id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)


# All the independent segments of one refresh at once: (segment, customer) pairs wanted.
WANTED_PAIRS = Table(
    "crm_segment_wanted_pairs",
    MetaData(),
    Column("segment_id", Integer, primary_key=True),
    Column("profile_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
SEGMENTS_PER_STATEMENT = 50
Pairs = list[tuple[int, int]]  # (segment id, profile id)


@dataclass
class Changes:
    entered: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.entered or self.left)


async def _segments(
    session: AsyncSession, installation_id: int, *, known: Book | None = None
) -> list[tuple[Segment, Rule]]:
    """Every segment of the shop with its rule ready to run, a segment after the segments
    its rule refers to (`in_segment`), so one pass sees them already updated.
    `known`: thresholds just computed (the rest are computed afresh)."""
    segments = list(
        await session.scalars(
            select(Segment).where(Segment.installation_id == installation_id).order_by(Segment.id)
        )
    )
    rules = usable_rules(segments)
    return [
        (
            segment,
            await resolve(session, installation_id, rules[segment.key], fresh=True, known=known),
        )
        for segment in dependency_order(segments, rules)
    ]


async def check_references(
    session: AsyncSession, installation_id: int, key: str, rule: Rule
) -> None:
    """Before saving segment `key` with `rule`: every `in_segment` names an existing
    segment of the shop, and no chain of references leads back to `key`."""
    rules = {
        s.key: compiled_rule(s)
        for s in await session.scalars(
            select(Segment).where(Segment.installation_id == installation_id)
        )
    }
    rules[key] = rule
    for name in sorted(segment_references(rule)):
        if name not in rules:
            raise RuleError("$", f"in_segment refers to {name!r}, which is not a segment")
    path = [key]

    def walk(current: str) -> None:
        for name in sorted(segment_references(rules[current]) if current in rules else set()):
            if name == key:
                raise RuleError("$", "segments refer to each other: " + " → ".join([*path, key]))
            if name in path:
                continue
            path.append(name)
            walk(name)
            path.pop()

    walk(key)


async def _note(
    session: AsyncSession, segment: SegmentLike, profile_id: int, entered: bool, now: datetime
) -> None:
    verb = "entered" if entered else "left"
    await record(
        session,
        installation_id=segment.installation_id,
        profile_id=profile_id,
        kind=f"segment_{verb}",
        occurred_at=now,
        subject_type="segment",
        subject_id=segment.key,
        summary=f"{verb.capitalize()} segment “{segment.name}”",
        data={"segment": segment.key},
        dedup_key=f"segment:{segment.id}:{profile_id}:{verb}:{now.isoformat()}",
    )


async def reevaluate_profiles(
    session: AsyncSession, installation_id: int, profile_ids: Iterable[int], now: datetime
) -> dict[str, Changes]:
    """Re-check every segment for these customers (called by the fold, inside its
    transaction, so membership is current when the webhook's changes commit)."""
    segments = await segments_for_fold(session, installation_id)
    changes: dict[str, Changes] = {}
    if not segments:
        return changes
    for profile_id in dict.fromkeys(profile_ids):
        facts = await load_facts_by_id(session, profile_id)  # holds the current memberships
        if facts is None:
            continue
        for segment, rule in segments:
            inside = matches(rule, facts, now)
            if inside == (segment.key in facts.segments):
                continue
            # later segments that refer to this one see the new membership
            (facts.segments.add if inside else facts.segments.discard)(segment.key)
            await _apply(session, segment, profile_id, inside, now)
            bucket = changes.setdefault(segment.key, Changes())
            (bucket.entered if inside else bucket.left).append(profile_id)
    return changes


async def _apply(
    session: AsyncSession, segment: SegmentLike, profile_id: int, inside: bool, now: datetime
) -> None:
    if inside:
        added = await insert_ignore(
            session,
            SegmentMembership,
            {
                "installation_id": segment.installation_id,
                "segment_id": segment.id,
                "profile_id": profile_id,
                "since": now,
            },
            conflict_columns=["segment_id", "profile_id"],
        )
        if added is None:
            return
        delta = 1
    else:
        result = await session.execute(
            delete(SegmentMembership).where(
                SegmentMembership.segment_id == segment.id,
                SegmentMembership.profile_id == profile_id,
            )
        )
        if not getattr(result, "rowcount", 0):
            return
        delta = -1
    await session.execute(
        update(Segment)
        .where(Segment.id == segment.id)
        # updated_at stays: it stamps the rules the folds cache (catalog.py)
        .values(member_count=Segment.member_count + delta, updated_at=Segment.updated_at)
        .execution_options(synchronize_session=False)
    )
    await _note(session, segment, profile_id, inside, now)


async def refresh_segment(
    session: AsyncSession,
    segment: Segment,
    now: datetime,
    *,
    dialect: str,
    rule: Rule | None = None,
    silent: bool = False,
) -> Changes:
    """Recompute the whole membership in the database; write only who entered or left.

    The first fill of a new segment is not news about anyone: it writes no timeline entries
    (nor does a `silent` refresh: the end of a history import).
    """
    if rule is None:
        rule = await resolve(session, segment.installation_id, compiled_rule(segment))
    changes = await diff_segment(session, segment, rule, now, dialect=dialect)
    await analyze_after_bulk(session, len(changes.entered) + len(changes.left))
    if segment.refreshed_at is not None and not silent:
        await note_many(session, segment, changes, now)
    segment.member_count = int(
        await session.scalar(select(func.count()).where(SegmentMembership.segment_id == segment.id))
        or 0
    )
    segment.refreshed_at = now
    await count_today(session, [segment], now)
    await session.flush()
    return changes


async def diff_segment(
    session: AsyncSession,
    segment: SegmentLike,
    rule: Rule,
    now: datetime,
    *,
    dialect: str,
    profiles: IdRange | None = None,
) -> Changes:
    """Write who entered and left one segment (of the chunk `profiles` only, when given),
    nothing else: no timeline, count or stamp."""
    # The rule runs once: its members go to a temporary table both diffs read from.
    await session.run_sync(lambda sync: WANTED.create(sync.connection(), checkfirst=True))
    await session.execute(delete(WANTED))
    await session.execute(
        insert(WANTED).from_select(
            ["id"],
            members_query(
                rule,
                installation_id=segment.installation_id,
                now=now,
                dialect=dialect,
                profiles=profiles,
            ),
        )
    )
    chunk = [] if profiles is None else [in_range(SegmentMembership.profile_id, profiles)]
    if dialect == "postgresql":  # a temporary table has no statistics until analysed
        await session.execute(text("ANALYZE crm_segment_wanted"))
    wanted = WANTED
    left = list(
        await session.scalars(
            delete(SegmentMembership)
            .where(
                SegmentMembership.segment_id == segment.id,
                *chunk,
                # NOT EXISTS plans as an anti-join; NOT IN over a big set can go quadratic
                ~select(wanted.c.id).where(wanted.c.id == SegmentMembership.profile_id).exists(),
            )
            .returning(SegmentMembership.profile_id)
        )
    )
    # Keep only newcomers in the temporary table, then insert them without looking at the
    # table being inserted into (a plan that re-reads it per row grows quadratically).
    await session.execute(
        delete(wanted).where(
            select(SegmentMembership.id)
            .where(
                SegmentMembership.segment_id == segment.id,
                SegmentMembership.profile_id == wanted.c.id,
            )
            .exists()
        )
    )
    entering = select(
        literal(segment.installation_id),
        literal(segment.id),
        wanted.c.id,
        literal(now, SegmentMembership.since.type),
    )
    entered = list(
        await session.scalars(
            insert(SegmentMembership)
            .from_select(["installation_id", "segment_id", "profile_id", "since"], entering)
            .returning(SegmentMembership.profile_id)
        )
    )
    return Changes(entered=sorted(entered), left=sorted(left))


async def recompute_after_save(
    session: AsyncSession,
    segment: Segment,
    now: datetime,
    *,
    dialect: str,
    inline_max: int,
    created: bool,
) -> bool:
    """After a segment is created or its rule changed: compute its members now when the
    shop has at most `inline_max` customers (True), else leave it to the scheduled
    refresh, which picks it up on its next tick (False). A request on a shop of millions
    must not hold a transaction for the tens of seconds a first fill takes there."""
    customers = await session.scalar(
        select(func.count())
        .select_from(Profile)
        .where(Profile.installation_id == segment.installation_id)
    )
    # A computation in chunks of the former rule, if one runs, sees its progress gone and
    # drops this segment (plugin.segments.fill); the next tick computes the new rule.
    segment.recompute_started_at = segment.recompute_done = segment.recompute_total = None
    if int(customers or 0) <= inline_max:
        await refresh_segment(session, segment, now, dialect=dialect)
        return True
    # A segment never computed (or still in its first fill) stays silent: NULL.
    segment.refreshed_at = None if created or segment.refreshed_at is None else RULE_CHANGED
    await session.flush()
    return False


# Membership rows written by one refresh above which PostgreSQL's statistics are renewed.
ANALYZE_AFTER_ROWS = 50_000


async def analyze_after_bulk(session: AsyncSession, rows_written: int) -> None:
    """After a first fill (millions of rows) the planner would still plan a customer's
    segments from the empty table's statistics and pick a per-segment index probe: a
    fold's look-up went from 0.2 to 3 ms at a million customers until autovacuum caught up."""
    if rows_written >= ANALYZE_AFTER_ROWS and session.get_bind().dialect.name == "postgresql":
        await session.execute(text("ANALYZE segment_memberships"))


async def note_many(
    session: AsyncSession, segment: Segment, changes: Changes, now: datetime
) -> None:
    """Timeline entries for a whole refresh in one multi-row INSERT."""
    rows = [
        {
            "installation_id": segment.installation_id,
            "profile_id": profile_id,
            "kind": f"segment_{verb}",
            "occurred_at": now,
            "subject_type": "segment",
            "subject_id": segment.key,
            "summary": f"{verb.capitalize()} segment “{segment.name}”",
            "data": {"segment": segment.key},
            "dedup_key": f"segment:{segment.id}:{profile_id}:{verb}:{now.isoformat()}",
            "recorded_at": now,
        }
        for verb, ids in (("entered", changes.entered), ("left", changes.left))
        for profile_id in ids
    ]
    if rows:
        await session.execute(insert(TimelineEntry), rows)


async def count_today(session: AsyncSession, segments: list[Segment], now: datetime) -> None:
    """Today's member count of each segment (the daily history), one upsert for all."""
    if not segments:
        return
    dialect = session.get_bind().dialect.name
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_into(SegmentDailyCount).values(
        [
            {
                "installation_id": segment.installation_id,
                "segment_id": segment.id,
                "day": now.date(),
                "members": segment.member_count,
            }
            for segment in segments
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["segment_id", "day"], set_={"members": statement.excluded.members}
        )
    )


async def refresh_together(
    session: AsyncSession,
    items: list[tuple[Segment, Rule]],
    now: datetime,
    *,
    dialect: str,
    silent: bool = False,
) -> dict[str, Changes]:
    """Refresh many segments at once: every rule is evaluated in one pass over the
    customers, then one anti-join inserts who entered and one deletes who left, for all of
    them. Per-segment statements cost more than the rules themselves.
    Rules must not refer to segments refreshed in the same call (`in_segment`).
    `silent`: no timeline entries (as for a first fill)."""
    if not items:
        return {}
    changes, counts = await diff_together(session, items, now, dialect=dialect)
    await analyze_after_bulk(session, sum(len(c.entered) + len(c.left) for c in changes.values()))
    out: dict[str, Changes] = {}
    for segment, _ in items:
        change = changes[segment.id]
        if segment.refreshed_at is not None and not silent:  # a first fill is no news
            await note_many(session, segment, change, now)
        segment.member_count = int(counts.get(segment.id, 0))
        segment.refreshed_at = now
        out[segment.key] = change
    await count_today(session, [segment for segment, _ in items], now)
    await session.flush()
    return out


async def diff_together(
    session: AsyncSession,
    items: list[tuple[Segment, Rule]],
    now: datetime,
    *,
    dialect: str,
    profiles: IdRange | None = None,
) -> tuple[dict[int, Changes], dict[int, int]]:
    """Write who entered and left these segments (of the chunk `profiles` only, when
    given): changes and member counts (of the chunk) by segment id; no timeline or stamp."""
    if dialect == "postgresql":
        entered, left, counts = await diff_with_masks(session, items, now, profiles=profiles)
    else:
        entered, left, counts = await _diff_through_temporary_table(
            session, items, now, dialect, profiles
        )
    changes = {segment.id: Changes() for segment, _ in items}
    for segment_id, profile_id in entered:
        changes[segment_id].entered.append(profile_id)
    for segment_id, profile_id in left:
        changes[segment_id].left.append(profile_id)
    for change in changes.values():
        change.entered.sort()
        change.left.sort()
    return changes, counts


FULL_REFRESH_SECONDS = 3600.0


async def refresh_installation(
    session: AsyncSession,
    installation_id: int,
    now: datetime,
    *,
    dialect: str,
    full: bool | None = None,
    skip_waiting: bool = False,
    silent: bool = False,
) -> dict[str, Changes]:
    """RFM and scores, then the segments of one shop (the scheduled job: time-driven
    rules flip on time, and RFM boundaries follow the shop as it grows).

    `skip_waiting`: leave segments never computed or whose rule changed to the computation
    in chunks that follows (`plugin.segments.fill`), which shows its progress.

    `silent`: write no `segment_entered` / `segment_left` entries. The end of a history
    import moves customers by what they did months ago: that is no news about them, and
    flows triggered by segment entries must not mail the shop's whole past.

    Segments whose rules cannot change without an event about the customer are kept
    current by the folds; the scheduled job recomputes them only in a full refresh (the
    first one, then every `FULL_REFRESH_SECONDS`, or `full=True`) as a safety net.
    Segments that refer to no other go together; the others follow one by one."""
    if dialect == "postgresql":
        # Whole-base statements have cost estimates that trigger JIT compilation, which
        # takes seconds: longer than these statements run without it.
        await session.execute(text("SET LOCAL jit = off"))
        # The quantiles and the ranked thresholds sort the whole base: in memory.
        await session.execute(
            text("SELECT set_config('work_mem', :size, true)"), {"size": WORK_MEM}
        )
    await refresh_rfm(session, installation_id, now)
    await ensure_source_segments(session, installation_id)
    # Every whole-base threshold (the score's median check, each "top N %") at once.
    rows = list(
        await session.scalars(select(Segment).where(Segment.installation_id == installation_id))
    )
    tops = [top for rule in usable_rules(rows).values() for top in top_percents(rule)]
    known = await compute_many(session, installation_id, [scoring.MEDIAN, *tops])
    medians = dict(known[book_key(scoring.MEDIAN)])
    await scoring.refresh_scores(session, installation_id, medians=medians)
    segments = await _segments(session, installation_id, known=known)
    if skip_waiting:
        segments = [(s, r) for s, r in segments if not is_waiting(s)]
    if full is None:
        stale = now - timedelta(seconds=FULL_REFRESH_SECONDS)
        full = any(s.refreshed_at is None or s.refreshed_at < stale for s, _ in segments)
    if not full:
        segments = [(s, r) for s, r in segments if changes_with_time(r)]
    independent = [(s, r) for s, r in segments if not segment_references(r)]
    changes = await refresh_together(session, independent, now, dialect=dialect, silent=silent)
    for segment, rule in segments:
        if segment_references(rule):
            changes[segment.key] = await refresh_segment(
                session, segment, now, dialect=dialect, rule=rule, silent=silent
            )
    return changes


def _leavers(segment_ids: list[int], wanted: Any, profiles: IdRange | None) -> Any:
    """DELETE … RETURNING of the memberships of these segments no longer wanted."""
    chunk = [] if profiles is None else [in_range(SegmentMembership.profile_id, profiles)]
    return (
        delete(SegmentMembership)
        .where(
            SegmentMembership.segment_id.in_(segment_ids),
            *chunk,
            ~select(wanted.c.profile_id)
            .where(
                wanted.c.segment_id == SegmentMembership.segment_id,
                wanted.c.profile_id == SegmentMembership.profile_id,
            )
            .exists(),
        )
        .returning(SegmentMembership.segment_id, SegmentMembership.profile_id)
    )


async def _diff_through_temporary_table(
    session: AsyncSession,
    items: list[tuple[Segment, Rule]],
    now: datetime,
    dialect: str,
    profiles: IdRange | None = None,
) -> tuple[Pairs, Pairs, dict[int, int]]:
    """Elsewhere: every rule's members go to one temporary table both diffs read from."""
    await session.run_sync(lambda sync: WANTED_PAIRS.create(sync.connection(), checkfirst=True))
    await session.execute(delete(WANTED_PAIRS))
    chunk_of = [] if profiles is None else [in_range(Profile.id, profiles)]
    for start in range(0, len(items), SEGMENTS_PER_STATEMENT):
        chunk = items[start : start + SEGMENTS_PER_STATEMENT]
        selects = [
            select(literal(segment.id).label("segment_id"), Profile.id.label("profile_id")).where(
                Profile.installation_id == segment.installation_id,
                *chunk_of,
                compile_rule(
                    rule, now=now, dialect=dialect, installation_id=segment.installation_id
                ),
            )
            for segment, rule in chunk
        ]
        await session.execute(
            insert(WANTED_PAIRS).from_select(["segment_id", "profile_id"], union_all(*selects))
        )
    wanted = WANTED_PAIRS
    ids = [segment.id for segment, _ in items]
    installation_id = items[0][0].installation_id
    counts: dict[int, int] = dict(
        (
            await session.execute(
                select(wanted.c.segment_id, func.count()).group_by(wanted.c.segment_id)
            )
        ).all()
    )
    left = (await session.execute(_leavers(ids, wanted, profiles))).all()
    # Newcomers only, then a plain insert (see refresh_segment).
    await session.execute(
        delete(wanted).where(
            select(SegmentMembership.id)
            .where(
                SegmentMembership.segment_id == wanted.c.segment_id,
                SegmentMembership.profile_id == wanted.c.profile_id,
            )
            .exists()
        )
    )
    entering = select(
        literal(installation_id),
        wanted.c.segment_id,
        wanted.c.profile_id,
        literal(now, SegmentMembership.since.type),
    )
    entered = (
        await session.execute(
            insert(SegmentMembership)
            .from_select(["installation_id", "segment_id", "profile_id", "since"], entering)
            .returning(SegmentMembership.segment_id, SegmentMembership.profile_id)
        )
    ).all()
    return [(r[0], r[1]) for r in entered], [(r[0], r[1]) for r in left], counts
