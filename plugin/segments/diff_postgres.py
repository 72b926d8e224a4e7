"""The membership diff of a whole-shop refresh on PostgreSQL, as bit masks.

One read-only statement scans the customers once and gives each a 62-bit mask of the
segments whose rule holds (`CASE WHEN rule THEN 2^k ELSE 0 END + …`), compares it with
the mask of the segments they are in (`bit_or` over their memberships) and returns only
the customers whose masks differ, plus every segment's new member count. Integers are
cheaper to build and compare than arrays of ids, and a read-only statement leaves the
planner free to pick any plan. The few differing customers' pairs then reach two small
statements, a delete and an insert, fed with arrays (`unnest`).

Both writes act only on pairs that differed in the read's snapshot: a fold committing in
between is not undone (an insert that meets its row does nothing; a delete of a row it
already removed deletes nothing), as with the single-statement diff it replaces.

Given a chunk of customers (`profiles`, an id range), the same statements read and write
only that chunk's customers, their orders and their memberships (`plugin.segments.fill`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, case, func, literal, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.segments.models import Segment, SegmentMembership
from plugin.segments.rules import Rule
from plugin.segments.sql import IdRange, OrderCounts, compile_rule, in_range

# Bits per statement: a signed 64-bit integer holds 62 of them with room to spare.
SEGMENTS_PER_MASK = 62
# Memory for the hashes and sorts of whole-base statements (a transaction-local setting).
WORK_MEM = "256MB"
Pairs = list[tuple[int, int]]  # (segment id, profile id)

_DELETE = text(
    "DELETE FROM segment_memberships WHERE id = ANY(ARRAY("
    " SELECT m.id FROM segment_memberships AS m"
    " JOIN unnest(CAST(:segments AS integer[]), CAST(:profiles AS integer[])) AS d(s, p)"
    " ON m.segment_id = d.s AND m.profile_id = d.p))"
    " RETURNING segment_id, profile_id"
)
_INSERT = text(
    "INSERT INTO segment_memberships (installation_id, segment_id, profile_id, since)"
    " SELECT :installation, d.s, d.p, :since"
    " FROM unnest(CAST(:segments AS integer[]), CAST(:profiles AS integer[])) AS d(s, p)"
    " ON CONFLICT (segment_id, profile_id) DO NOTHING"
    " RETURNING segment_id, profile_id"
)


async def diff_with_masks(
    session: AsyncSession,
    items: list[tuple[Segment, Rule]],
    now: datetime,
    *,
    profiles: IdRange | None = None,
) -> tuple[Pairs, Pairs, dict[int, int]]:
    """(entered, left, member count per segment id) for these segments, written; with
    `profiles`, of that chunk of customers only (the counts too)."""
    entered: Pairs = []
    left: Pairs = []
    counts: dict[int, int] = {}
    items = sorted(items, key=lambda item: item[0].id)
    # Rules with order conditions become hashed sub-plans only if they fit in memory.
    previous = await session.scalar(text("SELECT current_setting('work_mem')"))
    await session.execute(text("SELECT set_config('work_mem', :size, true)"), {"size": WORK_MEM})
    try:
        for start in range(0, len(items), SEGMENTS_PER_MASK):
            chunk = items[start : start + SEGMENTS_PER_MASK]
            came, gone, chunk_counts = await _diff_chunk(session, chunk, now, profiles)
            entered += came
            left += gone
            counts.update(chunk_counts)
    finally:
        await session.execute(
            text("SELECT set_config('work_mem', :size, true)"), {"size": previous}
        )
    return entered, left, counts


async def _diff_chunk(
    session: AsyncSession,
    items: Sequence[tuple[Segment, Rule]],
    now: datetime,
    profiles: IdRange | None,
) -> tuple[Pairs, Pairs, dict[int, int]]:
    installation_id = items[0][0].installation_id
    ids = [segment.id for segment, _ in items]
    differing, totals = await _read_differences(session, items, now, profiles)
    counts = dict(zip(ids, totals, strict=True))
    joining: Pairs = []
    leaving: Pairs = []
    for profile_id, wanted, held in differing:
        for bit, segment_id in enumerate(ids):
            flag = 1 << bit
            if wanted & flag and not held & flag:
                joining.append((segment_id, profile_id))
            elif held & flag and not wanted & flag:
                leaving.append((segment_id, profile_id))
    gone = await _write(session, _DELETE, leaving, {})
    came = await _write(session, _INSERT, joining, {"installation": installation_id, "since": now})
    return came, gone, counts


async def _write(
    session: AsyncSession, statement: Any, pairs: Pairs, params: dict[str, Any]
) -> Pairs:
    if not pairs:
        return []
    rows = await session.execute(
        statement,
        {
            **params,
            "segments": [segment_id for segment_id, _ in pairs],
            "profiles": [profile_id for _, profile_id in pairs],
        },
    )
    return [(int(r[0]), int(r[1])) for r in rows]


async def _read_differences(
    session: AsyncSession,
    items: Sequence[tuple[Segment, Rule]],
    now: datetime,
    profiles: IdRange | None,
) -> tuple[list[tuple[int, int, int]], list[int]]:
    """The customers whose wanted and held masks differ, and each segment's count."""
    installation_id = items[0][0].installation_id
    # every order condition in one GROUP BY
    order_counts = OrderCounts(installation_id, profiles)
    chunk = [] if profiles is None else [in_range(Profile.id, profiles)]
    held_chunk = [] if profiles is None else [in_range(SegmentMembership.profile_id, profiles)]
    bits = [literal(1 << bit, BigInteger) for bit in range(len(items))]
    wanted_mask: Any = sum(
        (
            case(
                (
                    compile_rule(
                        rule,
                        now=now,
                        dialect="postgresql",
                        installation_id=installation_id,
                        order_counts=order_counts,
                    ),
                    bit,
                ),
                else_=literal(0, BigInteger),
            )
            for (_, rule), bit in zip(items, bits, strict=True)
        ),
        start=literal(0, BigInteger),
    )
    customers: Any = Profile.__table__
    if order_counts:
        grouped = order_counts.subquery()
        customers = customers.outerjoin(grouped, grouped.c.profile_id == Profile.id)
    wanted = (
        select(Profile.id.label("profile_id"), wanted_mask.label("mask"))
        .select_from(customers)
        .where(Profile.installation_id == installation_id, *chunk)
        .cte("wanted")
        .prefix_with("MATERIALIZED")
    )
    bit_of_segment = case(
        {segment.id: bit for (segment, _), bit in zip(items, bits, strict=True)},
        value=SegmentMembership.segment_id,
        else_=literal(0, BigInteger),
    )
    held = (
        select(
            SegmentMembership.profile_id,
            func.bit_or(bit_of_segment, type_=BigInteger).label("mask"),
        )
        .where(SegmentMembership.segment_id.in_([segment.id for segment, _ in items]), *held_chunk)
        .group_by(SegmentMembership.profile_id)
        .cte("held")
    )
    wants: Any = func.coalesce(wanted.c.mask, 0)
    holds: Any = func.coalesce(held.c.mask, 0)
    no_counts = literal(None, postgresql.ARRAY(BigInteger))
    differing = (
        select(
            func.coalesce(wanted.c.profile_id, held.c.profile_id).label("profile_id"),
            wants.label("wanted"),
            holds.label("held"),
            no_counts.label("counts"),
        )
        .select_from(wanted.join(held, held.c.profile_id == wanted.c.profile_id, full=True))
        .where(wants != holds)
    )
    per_segment: postgresql.array[Any] = postgresql.array(
        [func.count().filter(wanted.c.mask.op("&")(bit) != 0) for bit in bits],
        type_=BigInteger,
    )
    totals = select(
        literal(-1, Integer),
        literal(0, BigInteger),
        literal(0, BigInteger),
        per_segment,
    ).select_from(wanted)
    rows = (await session.execute(differing.union_all(totals))).all()
    found = [(int(r[0]), int(r[1]), int(r[2])) for r in rows if r[3] is None]
    counted = next(r[3] for r in rows if r[3] is not None)
    return found, [int(n) for n in counted]
