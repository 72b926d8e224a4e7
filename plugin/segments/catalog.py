"""The shop's segments, parsed and in evaluation order, kept per process between folds.

Every fold re-checks every segment for the customers it touched. Loading and ordering
some thirty segments took longer than evaluating them, so the parsed list is cached per
installation and re-read only when a cheap stamp of the table changes: the number of
segments and their latest `updated_at` (a rule edit, a new or deleted segment, and the
scheduled refresh all move it; the folds' own member-count updates deliberately don't).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol, TypeVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.segments.models import Segment
from plugin.segments.rules import Rule, RuleError, parse_rule, segment_references
from plugin.segments.thresholds import needs_resolving, resolve

logger = logging.getLogger(__name__)


class SegmentLike(Protocol):
    """What writing a membership change needs to know about its segment."""

    @property
    def id(self) -> int: ...

    @property
    def installation_id(self) -> int: ...

    @property
    def key(self) -> str: ...

    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=SegmentLike)


@dataclass(frozen=True)
class SegmentRef:
    """A segment detached from any session, safe to keep between transactions."""

    id: int
    installation_id: int
    key: str
    name: str


@lru_cache(maxsize=4096)
def _parsed(rule_json: str) -> Rule:
    return parse_rule(json.loads(rule_json))


def compiled_rule(segment: Segment) -> Rule:
    """The segment's rule, parsed once per distinct rule text (stored rules are valid)."""
    return _parsed(json.dumps(segment.rule, sort_keys=True))


def usable_rules(segments: Iterable[Segment]) -> dict[str, Rule]:
    """Rules by segment key; a stored rule that no longer parses is logged and skipped,
    so one bad segment never stops the others."""
    rules: dict[str, Rule] = {}
    for segment in segments:
        try:
            rules[segment.key] = compiled_rule(segment)
        except RuleError as error:
            logger.error("segment %s has an unusable rule: %s", segment.id, error)
    return rules


def dependency_order(segments: list[S], rules: dict[str, Rule]) -> list[S]:
    """Segments with usable rules, each after the segments its rule refers to
    (`in_segment`), so one pass sees those already updated. A cycle reads stored members."""
    by_key = {s.key: s for s in segments if s.key in rules}
    ordered: list[S] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(segment: S) -> None:
        if segment.key in placed or segment.key in visiting:
            return
        visiting.add(segment.key)
        for key in sorted(segment_references(rules[segment.key])):
            if key in by_key:
                place(by_key[key])
        visiting.discard(segment.key)
        placed.add(segment.key)
        ordered.append(segment)

    for segment in by_key.values():
        place(segment)
    return ordered


Stamp = tuple[int, datetime | None]

_STAMP = select(func.count(Segment.id), func.max(Segment.updated_at)).where(
    Segment.installation_id == bindparam("installation_id")
)
_ALL = select(Segment).where(Segment.installation_id == bindparam("installation_id"))


@dataclass(frozen=True)
class _Entry:
    stamp: Stamp
    items: tuple[tuple[SegmentRef, Rule, bool], ...]  # (segment, rule, has top_percent)


_cache: dict[int, _Entry] = {}


async def segments_for_fold(
    session: AsyncSession, installation_id: int
) -> list[tuple[SegmentRef, Rule]]:
    """Every usable segment of the shop with its rule ready to run, in dependency order."""
    params = {"installation_id": installation_id}
    await session.flush()  # a segment saved earlier in this transaction counts
    row = (await (await session.connection()).execute(_STAMP, params)).one()
    stamp: Stamp = (int(row[0]), row[1])
    entry = _cache.get(installation_id)
    if entry is None or entry.stamp != stamp:
        segments = list(await session.scalars(_ALL.order_by(Segment.id), params))
        rules = usable_rules(segments)
        ordered = dependency_order(segments, rules)
        entry = _Entry(
            stamp,
            tuple(
                (
                    SegmentRef(s.id, s.installation_id, s.key, s.name),
                    rules[s.key],
                    needs_resolving(rules[s.key]),
                )
                for s in ordered
            ),
        )
        _cache[installation_id] = entry
    return [
        (ref, await resolve(session, installation_id, rule) if dynamic else rule)
        for ref, rule, dynamic in entry.items
    ]


def forget(installation_id: int | None = None) -> None:
    """Drop cached segments (tests that rewrite rows behind the ORM's back)."""
    if installation_id is None:
        _cache.clear()
    else:
        _cache.pop(installation_id, None)
