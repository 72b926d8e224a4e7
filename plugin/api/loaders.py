"""Per-request DataLoaders: every relation of the schema is read in one statement per
batch, whatever the number of parents (no lazy loading, no N+1).

Paged relations (orders, checkouts, messages, shipments, timeline, members) are batched
with a window function (`row_number() over (partition by parent …)`), one statement per
distinct page request.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from strawberry.dataloader import DataLoader

from plugin.api.pagination import SortKey
from plugin.commerce.models import Checkout, Order, OrderLine
from plugin.messaging.models import Message
from plugin.notes.models import Note
from plugin.predictions.models import PredictionModel
from plugin.profiles.models import Identity, Profile, ProfileTag, ProfileTotal
from plugin.scoring.formula import factor_expressions
from plugin.scoring.service import Factor, shop_inputs
from plugin.scoring.weights import FACTORS
from plugin.segments.facts import (
    ORDER_WITH_LINES,
    CheckoutFacts,
    OrderFacts,
    orders_from_rows,
)
from plugin.segments.models import Segment, SegmentDailyCount, SegmentMembership
from plugin.segments.rules import Rule, parse_rule
from plugin.segments.thresholds import resolve
from plugin.timeline.models import TimelineEntry
from plugin.tracking.models import Checkpoint, Shipment

if TYPE_CHECKING:
    from plugin.api.context import ApiContext

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
M = TypeVar("M")

# (parent id, rows wanted, `after` cursor or None)
PageKey = tuple[int, int, str | None]
# (profile id, rows wanted, after, kinds or None, kind prefixes the viewer may not see)
TimelineKey = tuple[int, int, str | None, tuple[str, ...] | None, tuple[str, ...]]
Facts = tuple[tuple[OrderFacts, ...], tuple[CheckoutFacts, ...]]

ORDER_SORT = SortKey(Order.placed_at, Order.id, "datetime")
CHECKOUT_SORT = SortKey(Checkout.started_at, Checkout.id, "datetime")
TIMELINE_SORT = SortKey(TimelineEntry.occurred_at, TimelineEntry.id, "datetime")
MEMBER_SORT = SortKey(SegmentMembership.id, SegmentMembership.id, "int")
MESSAGE_SORT = SortKey(Message.created_at, Message.id, "datetime", nullable=False)
SHIPMENT_SORT = SortKey(Shipment.shipped_at, Shipment.id, "datetime", nullable=False)


def _by_parent(keys: Sequence[int], pairs: Sequence[tuple[int, M]]) -> list[list[M]]:
    grouped: dict[int, list[M]] = defaultdict(list)
    for parent, item in pairs:
        grouped[parent].append(item)
    return [grouped.get(key, []) for key in keys]


def _ranked(model: Any, parent: Any, sort: SortKey, where: list[Any], limit: Any) -> Select[Any]:
    """The first `limit` rows of `model` per parent in `sort` order."""
    rank = func.row_number().over(partition_by=parent, order_by=sort.order_by()).label("rank")
    ranked = select(model, rank).where(*where).subquery()
    row = aliased(model, ranked)
    return select(row).where(ranked.c.rank <= limit).order_by(ranked.c.rank)


# First pages (no cursor) by shape, with the tenant, the parents and the page size as
# parameters: building the aliased window subquery of a wide table costs more CPU than
# PostgreSQL takes to run it, and the card asks for the same shapes every time.
_FIRST_PAGES: dict[Hashable, Select[Any]] = {}


def _first_pages(
    model: Any, parent: Any, sort: SortKey, shape: Hashable, extra: list[Any]
) -> Select[Any]:
    key = (model, shape)
    found = _FIRST_PAGES.get(key)
    if found is None:
        where = [
            model.installation_id == bindparam("tenant"),
            parent.in_(bindparam("parents", expanding=True)),
            *extra,
        ]
        found = _FIRST_PAGES[key] = _ranked(model, parent, sort, where, bindparam("limit"))
    return found


# The facts behind `why`, for a batch of customers: (profile, order, …, line …) rows.
_FACT_ORDERS = (
    select(Order.profile_id, *ORDER_WITH_LINES)
    .outerjoin(OrderLine, OrderLine.order_id == Order.id)
    .where(
        Order.installation_id == bindparam("tenant"),
        Order.profile_id.in_(bindparam("parents", expanding=True)),
    )
    .order_by(Order.id, OrderLine.id)
)
_FACT_CHECKOUTS = select(
    Checkout.profile_id, Checkout.state, Checkout.lines_count, Checkout.source_updated_at
).where(
    Checkout.installation_id == bindparam("tenant"),
    Checkout.profile_id.in_(bindparam("parents", expanding=True)),
)


# Relations read whole per parent, built once with the tenant and the parents as
# parameters (building a statement costs more CPU than the database takes to run it).
_TENANT: Any = bindparam("tenant")
_PARENTS: Any = bindparam("parents", expanding=True)
_TAGS = (
    select(ProfileTag.profile_id, ProfileTag.tag)
    .where(ProfileTag.installation_id == _TENANT, ProfileTag.profile_id.in_(_PARENTS))
    .order_by(ProfileTag.tag)
)
_IDENTITIES = (
    select(Identity)
    .where(Identity.installation_id == _TENANT, Identity.profile_id.in_(_PARENTS))
    .order_by(Identity.id)
)
# A customer's money per currency, the main currency first (most orders, then most money,
# then the code: `plugin.profiles.aggregates.order_figures`' choice).
_TOTALS = (
    select(ProfileTotal)
    .where(ProfileTotal.installation_id == _TENANT, ProfileTotal.profile_id.in_(_PARENTS))
    .order_by(
        ProfileTotal.orders_count.desc(), ProfileTotal.total_spent.desc(), ProfileTotal.currency
    )
)
_NOTES = (
    select(Note)
    .where(Note.installation_id == _TENANT, Note.profile_id.in_(_PARENTS))
    .order_by(Note.created_at.desc(), Note.id.desc())
)
_MEMBERSHIPS = (
    select(SegmentMembership.profile_id, SegmentMembership.since, Segment)
    .join(Segment, Segment.id == SegmentMembership.segment_id)
    .where(
        SegmentMembership.installation_id == _TENANT,
        SegmentMembership.profile_id.in_(_PARENTS),
    )
    .order_by(Segment.name, Segment.id)
)
_CHECKPOINTS = (
    select(Checkpoint)
    .where(Checkpoint.installation_id == _TENANT, Checkpoint.shipment_id.in_(_PARENTS))
    .order_by(Checkpoint.occurred_at, Checkpoint.id)
)


class Loaders:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.tags = DataLoader[int, list[str]](load_fn=self._tags)
        self.identities = DataLoader[int, list[Identity]](load_fn=self._identities)
        self.notes = DataLoader[int, list[Note]](load_fn=self._notes)
        self.totals = DataLoader[int, list[ProfileTotal]](load_fn=self._totals)
        self.memberships = DataLoader[int, list[tuple[Segment, datetime]]](
            load_fn=self._memberships
        )
        self.facts = DataLoader[int, Facts](load_fn=self._facts)
        self.rules = DataLoader[str, Rule](load_fn=self._rules)
        self.order_lines = DataLoader[int, list[OrderLine]](load_fn=self._order_lines)
        self.orders = DataLoader[PageKey, list[Order]](
            load_fn=self._pages_of(Order, Order.profile_id, ORDER_SORT)
        )
        self.checkouts = DataLoader[PageKey, list[Checkout]](
            load_fn=self._pages_of(Checkout, Checkout.profile_id, CHECKOUT_SORT)
        )
        self.messages = DataLoader[PageKey, list[Message]](
            load_fn=self._pages_of(Message, Message.profile_id, MESSAGE_SORT)
        )
        self.shipments = DataLoader[PageKey, list[Shipment]](
            load_fn=self._pages_of(Shipment, Shipment.profile_id, SHIPMENT_SORT)
        )
        self.checkpoints = DataLoader[int, list[Checkpoint]](load_fn=self._checkpoints)
        self.timeline = DataLoader[TimelineKey, list[TimelineEntry]](load_fn=self._timeline)
        self.members = DataLoader[PageKey, list[tuple[Profile, int]]](load_fn=self._members)
        self.score_factors = DataLoader[int, list[Factor]](load_fn=self._score_factors)
        self.prediction_models = DataLoader[str, PredictionModel | None](
            load_fn=self._prediction_models
        )
        self.count_history = DataLoader[tuple[int, int], list[SegmentDailyCount]](
            load_fn=self._count_history
        )

    @property
    def installation_id(self) -> int:
        return self.ctx.require().installation_id

    # -- one row set per parent ------------------------------------------------------
    async def _tags(self, keys: list[int]) -> list[list[str]]:
        rows = await self.ctx.rows(_TAGS, self._params(keys))
        return _by_parent(keys, [(r[0], r[1]) for r in rows])

    async def _identities(self, keys: list[int]) -> list[list[Identity]]:
        identities = await self.ctx.scalars(_IDENTITIES, self._params(keys))
        return _by_parent(keys, [(i.profile_id, i) for i in identities])

    async def _totals(self, keys: list[int]) -> list[list[ProfileTotal]]:
        totals = await self.ctx.scalars(_TOTALS, self._params(keys))
        return _by_parent(keys, [(t.profile_id, t) for t in totals])

    async def _notes(self, keys: list[int]) -> list[list[Note]]:
        notes = await self.ctx.scalars(_NOTES, self._params(keys))
        return _by_parent(keys, [(n.profile_id, n) for n in notes])

    async def _memberships(self, keys: list[int]) -> list[list[tuple[Segment, datetime]]]:
        rows = await self.ctx.rows(_MEMBERSHIPS, self._params(keys))
        return _by_parent(keys, [(r[0], (r[2], r[1])) for r in rows])

    def _params(self, parents: list[int]) -> dict[str, Any]:
        return {"tenant": self.installation_id, "parents": parents}

    async def _facts(self, keys: list[int]) -> list[Facts]:
        """What `plugin.segments.evaluate.explain` needs besides the profile's own columns
        (the batched form of `plugin.segments.facts.load_facts`): two statements of plain
        columns, built once, for any number of customers."""
        params = {"tenant": self.installation_id, "parents": keys}
        orders = orders_from_rows(await self.ctx.rows(_FACT_ORDERS, params), start=1)
        order_facts = _by_parent(keys, [(head[0], facts) for head, facts in orders])
        checkout_facts = _by_parent(
            keys,
            [
                (row[0], CheckoutFacts(row[1], row[2], row[3]))
                for row in await self.ctx.rows(_FACT_CHECKOUTS, params)
            ],
        )
        return [(tuple(o), tuple(c)) for o, c in zip(order_facts, checkout_facts, strict=True)]

    async def _rules(self, keys: list[str]) -> list[Rule]:
        """Stored rules (JSON text) parsed, with base-wide thresholds (`top_percent`)
        resolved exactly as the segment refresh resolves them."""
        installation_id = self.installation_id
        resolved = []
        for key in keys:
            rule = parse_rule(json.loads(key))

            async def work(session: AsyncSession, rule: Rule = rule) -> Rule:
                return await resolve(session, installation_id, rule)

            resolved.append(await self.ctx.run(work))
        return resolved

    async def _order_lines(self, keys: list[int]) -> list[list[OrderLine]]:
        lines = await self.ctx.scalars(
            select(OrderLine)
            .where(OrderLine.installation_id == self.installation_id, OrderLine.order_id.in_(keys))
            .order_by(OrderLine.id)
        )
        return _by_parent(keys, [(line.order_id, line) for line in lines])

    async def _score_factors(self, keys: list[int]) -> list[list[Factor]]:
        """`plugin.scoring.service.explain_score` for many customers: the shop's inputs
        once, then every factor's value in one statement."""
        installation_id = self.installation_id

        async def work(session: AsyncSession) -> list[list[Factor]]:
            settings, medians = await shop_inputs(session, installation_id)
            factors = factor_expressions(settings, medians)
            names = list(FACTORS)
            rows = await session.execute(
                select(Profile.id, *(factors[n] for n in names)).where(
                    Profile.installation_id == installation_id, Profile.id.in_(keys)
                )
            )
            total = settings.total_weight
            found: dict[int, list[Factor]] = {}
            for row in rows:
                parts = []
                for name, raw in zip(names, row[1:], strict=True):
                    weight = settings.weights.get(name, 0) / total
                    value = float(raw if raw is not None else 0)
                    points = round(value * weight * 100, 1)
                    parts.append(Factor(name, FACTORS[name], round(value, 3), weight, points))
                found[row[0]] = parts
            return [found.get(key, []) for key in keys]

        return await self.ctx.run(work)

    async def _prediction_models(self, keys: list[str]) -> list[PredictionModel | None]:
        models = await self.ctx.scalars(
            select(PredictionModel).where(
                PredictionModel.installation_id == self.installation_id,
                PredictionModel.currency.in_(keys),
            )
        )
        by_currency = {m.currency: m for m in models}
        return [by_currency.get(key) for key in keys]

    async def _count_history(self, keys: list[tuple[int, int]]) -> list[list[SegmentDailyCount]]:
        longest = max(days for _, days in keys)
        since = self.ctx.now.date().toordinal() - longest
        rows = await self.ctx.scalars(
            select(SegmentDailyCount)
            .where(
                SegmentDailyCount.installation_id == self.installation_id,
                SegmentDailyCount.segment_id.in_({segment for segment, _ in keys}),
            )
            .order_by(SegmentDailyCount.day)
        )
        by_segment: dict[int, list[SegmentDailyCount]] = defaultdict(list)
        for row in rows:
            if row.day.toordinal() > since:
                by_segment[row.segment_id].append(row)
        today = self.ctx.now.date().toordinal()
        return [
            [r for r in by_segment.get(segment, []) if r.day.toordinal() > today - days]
            for segment, days in keys
        ]

    # -- pages per parent --------------------------------------------------------------
    def _page_params(self, parents: list[int], limit: int) -> dict[str, Any]:
        return {"tenant": self.installation_id, "parents": parents, "limit": limit}

    async def _paged(
        self,
        keys: Sequence[K],
        group: Callable[[K], Hashable],
        fetch: Callable[[list[K]], Awaitable[list[tuple[int, V]]]],
        parent: Callable[[K], int],
    ) -> list[list[V]]:
        """Keys asking for the same page shape share one statement."""
        groups: dict[Hashable, list[K]] = defaultdict(list)
        for key in keys:
            groups[group(key)].append(key)
        found: dict[tuple[Hashable, int], list[V]] = defaultdict(list)
        for shape, members in groups.items():
            for parent_id, item in await fetch(members):
                found[(shape, parent_id)].append(item)
        return [found.get((group(key), parent(key)), []) for key in keys]

    def _pages_of(
        self, model: Any, parent: Any, sort: SortKey
    ) -> Callable[[list[PageKey]], Awaitable[list[list[Any]]]]:
        """A batch function for `model` rows per parent, newest first, cursor-paged."""

        async def fetch(group: list[PageKey]) -> list[tuple[int, Any]]:
            _, limit, after = group[0]
            parents = [k[0] for k in group]
            if after is None:
                rows = await self.ctx.scalars(
                    _first_pages(model, parent, sort, (), []),
                    self._page_params(parents, limit),
                )
            else:
                where = [
                    model.installation_id == self.installation_id,
                    parent.in_(parents),
                    sort.after(after),
                ]
                rows = await self.ctx.scalars(_ranked(model, parent, sort, where, limit))
            return [(getattr(row, parent.key) or 0, row) for row in rows]

        async def load(keys: list[PageKey]) -> list[list[Any]]:
            return await self._paged(keys, lambda k: k[1:], fetch, lambda k: k[0])

        return load

    async def _checkpoints(self, keys: list[int]) -> list[list[Checkpoint]]:
        rows = await self.ctx.scalars(_CHECKPOINTS, self._params(keys))
        return _by_parent(keys, [(c.shipment_id, c) for c in rows])

    async def _timeline(self, keys: list[TimelineKey]) -> list[list[TimelineEntry]]:
        async def fetch(group: list[TimelineKey]) -> list[tuple[int, TimelineEntry]]:
            _, limit, after, kinds, hidden = group[0]
            hiding = [~or_(*(TimelineEntry.kind.startswith(p) for p in hidden))] if hidden else []
            if after is None and kinds is None:  # `hidden` comes from a fixed set of prefixes
                entries = await self.ctx.scalars(
                    _first_pages(
                        TimelineEntry, TimelineEntry.profile_id, TIMELINE_SORT, hidden, hiding
                    ),
                    self._page_params([k[0] for k in group], limit),
                )
                return [(e.profile_id, e) for e in entries]
            where: list[Any] = [
                TimelineEntry.installation_id == self.installation_id,
                TimelineEntry.profile_id.in_([k[0] for k in group]),
            ]
            if after is not None:
                where.append(TIMELINE_SORT.after(after))
            if kinds is not None:
                where.append(TimelineEntry.kind.in_(kinds))
            where += hiding
            entries = await self.ctx.scalars(
                _ranked(TimelineEntry, TimelineEntry.profile_id, TIMELINE_SORT, where, limit)
            )
            return [(e.profile_id, e) for e in entries]

        return await self._paged(keys, lambda k: k[1:], fetch, lambda k: k[0])

    async def _members(self, keys: list[PageKey]) -> list[list[tuple[Profile, int]]]:
        async def fetch(group: list[PageKey]) -> list[tuple[int, tuple[Profile, int]]]:
            _, limit, after = group[0]
            where = [
                SegmentMembership.installation_id == self.installation_id,
                SegmentMembership.segment_id.in_([k[0] for k in group]),
            ]
            if after is not None:
                where.append(MEMBER_SORT.after(after))
            rank = (
                func.row_number()
                .over(partition_by=SegmentMembership.segment_id, order_by=MEMBER_SORT.order_by())
                .label("rank")
            )
            ranked = (
                select(
                    SegmentMembership.id,
                    SegmentMembership.segment_id,
                    SegmentMembership.profile_id,
                    rank,
                )
                .where(*where)
                .subquery()
            )
            rows = await self.ctx.rows(
                select(Profile, ranked.c.segment_id, ranked.c.id)
                .join(ranked, ranked.c.profile_id == Profile.id)
                .where(ranked.c.rank <= limit)
                .order_by(ranked.c.segment_id, ranked.c.rank)
            )
            return [(r[1], (r[0], r[2])) for r in rows]

        return await self._paged(keys, lambda k: k[1:], fetch, lambda k: k[0])
