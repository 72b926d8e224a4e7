"""The analytics rollups give the direct queries' figures, however they were built.

- On random small shops, the funnel and cohort retention read from the rollups equal the
  direct queries, for whole-hour and ragged periods, any `now` and every filter, both after a
  rebuild and after changes kept current by `refresh_profiles`.
- Folding a story's webhooks shuffled and twice leaves the same rollup rows as folding
  them in order, and those rows are what a rebuild computes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import rollups
from plugin.analytics.cohorts import CohortRetention, cohort_retention
from plugin.analytics.funnel import Funnel, funnel
from plugin.analytics.models import CustomerMonth, FunnelHour, RollupState
from plugin.analytics.period import Period
from plugin.commerce.models import Checkout, CheckoutState, Order
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.inbox.folding import fold_payload
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.aggregates import recompute
from plugin.profiles.models import Profile
from tests.conftest import new_installation
from tests.simulator import FakeShop
from tests.stories import two_customers

BASE = datetime(2026, 3, 1, tzinfo=UTC)
SPAN_MINUTES = 120 * 24 * 60  # about four months of activity
CHANNELS = ["web", "pos", None]
SOURCES = ["google", "newsletter", None]
STATUSES = [
    "UNFULFILLED",
    "UNCONFIRMED",
    "FULFILLED",
    "PARTIALLY_FULFILLED",
    "RETURNED",
    "CANCELED",
    "DRAFT",
    "EXPIRED",
]
FILTERS = [(None, None), ("web", None), (None, "google"), ("pos", "newsletter")]
SEEDS = range(6)


def _moment(rng: random.Random) -> datetime:
    return BASE + timedelta(minutes=rng.randrange(SPAN_MINUTES), seconds=rng.randrange(60))


def _order(
    rng: random.Random, installation_id: int, profile: Profile | None, placed_at: datetime
) -> Order:
    paid = rng.random() < 0.7
    total = Decimal(rng.randrange(5, 300))
    return Order(
        installation_id=installation_id,
        saleor_id=f"order-{uuid.uuid4().hex[:12]}",
        profile_id=profile.id if profile else None,
        status=rng.choice(STATUSES),
        is_paid=paid and rng.random() < 0.5,
        charge_status="FULL" if paid else rng.choice(["NONE", "PARTIAL", None]),
        channel_slug=rng.choice(CHANNELS),
        currency="USD",
        total_gross=total,
        total_charged=total if paid else Decimal(0),
        utm_source=rng.choice(SOURCES),
        placed_at=placed_at,
        source_updated_at=placed_at,
    )


def _checkout(
    rng: random.Random,
    installation_id: int,
    started_at: datetime,
    profile: Profile | None,
    order: Order | None,
) -> Checkout:
    return Checkout(
        installation_id=installation_id,
        saleor_id=f"checkout-{uuid.uuid4().hex[:12]}",
        profile_id=profile.id if profile else None,
        email=rng.choice(["x@example.com", "", None]),
        channel_slug=rng.choice(CHANNELS),
        utm_source=rng.choice(SOURCES),
        currency="USD",
        state=CheckoutState.CONVERTED if order else CheckoutState.OPEN,
        order_saleor_id=order.saleor_id if order else None,
        started_at=started_at,
        source_updated_at=started_at,
    )


async def _random_shop(session: AsyncSession, rng: random.Random, installation_id: int) -> None:
    profiles = []
    for _ in range(rng.randrange(3, 10)):
        profile = Profile(installation_id=installation_id, utm_source=rng.choice(SOURCES))
        session.add(profile)
        profiles.append(profile)
    await session.flush()
    for _ in range(rng.randrange(10, 40)):
        owner: Profile | None = rng.choice([*profiles, None])
        order = _order(rng, installation_id, owner, _moment(rng))
        session.add(order)
        if rng.random() < 0.8:  # its checkout, usually minutes to days before it
            lead = timedelta(minutes=rng.randrange(-180, 4 * 24 * 60))
            session.add(_checkout(rng, installation_id, order.placed_at - lead, owner, order))
    for _ in range(rng.randrange(5, 20)):  # abandoned, some anonymous
        session.add(
            _checkout(rng, installation_id, _moment(rng), rng.choice([*profiles, None]), None)
        )
    await session.flush()
    for profile in profiles:
        await recompute(session, profile)
        # Whatever the profile says is what the reports use, even when it is stale.
        if rng.random() < 0.3:
            profile.channel = rng.choice(CHANNELS)
        if rng.random() < 0.3:
            profile.first_order_at = _moment(rng)


async def _change_some(session: AsyncSession, rng: random.Random, installation_id: int) -> None:
    """Edits of every kind a fold makes, through the ORM (as the folds do)."""
    orders = list(
        await session.scalars(select(Order).where(Order.installation_id == installation_id))
    )
    checkouts = list(
        await session.scalars(select(Checkout).where(Checkout.installation_id == installation_id))
    )
    profiles = list(
        await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
    )
    for order in rng.sample(orders, min(5, len(orders))):
        order.status = rng.choice(STATUSES)
        order.charge_status = rng.choice(["FULL", "NONE"])
        if rng.random() < 0.3:
            order.placed_at = _moment(rng)
        if rng.random() < 0.3:
            order.profile_id = rng.choice(profiles).id
    for checkout in rng.sample(checkouts, min(3, len(checkouts))):
        checkout.email = rng.choice(["y@example.com", None])
        checkout.channel_slug = rng.choice(CHANNELS)
    await session.delete(rng.choice(checkouts))
    session.add(_checkout(rng, installation_id, _moment(rng), None, None))
    new_order = _order(rng, installation_id, rng.choice(profiles), _moment(rng))
    session.add(new_order)
    session.add(
        _checkout(rng, installation_id, new_order.placed_at - timedelta(hours=1), None, new_order)
    )
    await session.flush()
    for profile in profiles:
        await recompute(session, profile)
    profiles[0].utm_source = rng.choice(SOURCES)


def _periods(rng: random.Random) -> list[tuple[Period, datetime]]:
    ragged = sorted([_moment(rng), _moment(rng)])
    first = date(2026, 3, 1) + timedelta(days=rng.randrange(60))
    cases = [
        (Period.days(date(2026, 2, 1), date(2026, 7, 31)), datetime(2026, 8, 2, 9, tzinfo=UTC)),
        (Period(ragged[0], ragged[1] + timedelta(minutes=1)), _moment(rng)),
        (Period.days(first, first + timedelta(days=rng.randrange(40))), _moment(rng)),
        (Period(_moment(rng) - timedelta(days=200), _moment(rng) + timedelta(days=100)), BASE),
    ]
    moment = _moment(rng)  # a period in the month of `now`, and one shorter than a day
    cases.append((Period(moment - timedelta(days=1), moment + timedelta(days=2)), moment))
    cases.append((Period(moment, moment + timedelta(hours=5)), moment + timedelta(days=90)))
    return cases


Figures = list[tuple[Funnel, CohortRetention]]


async def _figures(session: AsyncSession, installation_id: int, rng: random.Random) -> Figures:
    result = []
    for period, now in _periods(rng):
        for channel, source in FILTERS:
            result.append(
                (
                    await funnel(session, installation_id, period, channel=channel, source=source),
                    await cohort_retention(
                        session, installation_id, period, channel=channel, source=source, now=now
                    ),
                )
            )
    return result


@asynccontextmanager
async def _direct(db: Database, installation_id: int) -> AsyncIterator[AsyncSession]:
    """A session in which the installation's rollups are not built (rolled back after)."""
    async with db.session() as session:
        await session.execute(
            delete(RollupState).where(RollupState.installation_id == installation_id)
        )
        assert not await rollups.is_built(session, installation_id)
        yield session
        await session.rollback()


async def rollup_rows(db: Database, installation_id: int) -> dict[str, list[Any]]:
    """Every rollup row, with profiles named by e-mail (ids differ between installations)."""
    async with db.session() as session:
        hours = await session.execute(
            select(
                FunnelHour.hour,
                FunnelHour.channel,
                FunnelHour.source,
                FunnelHour.early_order_at,
                FunnelHour.started,
                FunnelHour.emailed,
                FunnelHour.contact,
                FunnelHour.ordered,
                FunnelHour.paid,
                FunnelHour.fulfilled,
            ).where(FunnelHour.installation_id == installation_id)
        )
        months = await session.execute(
            select(
                Profile.email,
                CustomerMonth.month,
                CustomerMonth.cohort,
                CustomerMonth.first_order_at,
                CustomerMonth.channel,
                CustomerMonth.source,
                CustomerMonth.first_at,
                CustomerMonth.last_at,
            )
            .join(Profile, Profile.id == CustomerMonth.profile_id)
            .where(CustomerMonth.installation_id == installation_id)
        )
        return {
            "hours": sorted(map(tuple, hours), key=repr),
            "months": sorted(map(tuple, months), key=repr),
        }


async def _rebuilt_rows(db: Database, installation_id: int) -> dict[str, list[Any]]:
    async with unit_of_work(db) as session:
        await rollups.rebuild_installation(session, installation_id)
    return await rollup_rows(db, installation_id)


@pytest.mark.parametrize("seed", SEEDS)
async def test_rollups_give_the_direct_figures(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        await _random_shop(session, rng, installation_id)

    async with db.session() as session:  # not built yet: the direct queries
        direct = await _figures(session, installation_id, random.Random(seed))
    async with unit_of_work(db) as session:
        await rollups.rebuild_installation(session, installation_id)
    async with db.session() as session:
        assert await rollups.is_built(session, installation_id)
        assert await _figures(session, installation_id, random.Random(seed)) == direct

    # Changes kept current by the fold's refresh, then compared again (and with a rebuild).
    async with unit_of_work(db) as session:
        await lock_installation(session, installation_id)
        await _change_some(session, rng, installation_id)
        await rollups.refresh_profiles(session, installation_id, [])
    incremental = await rollup_rows(db, installation_id)
    async with _direct(db, installation_id) as session:
        direct = await _figures(session, installation_id, random.Random(seed + 100))
    async with db.session() as session:
        assert await _figures(session, installation_id, random.Random(seed + 100)) == direct
    assert await _rebuilt_rows(db, installation_id) == incremental


async def _fold(db: Database, installation_id: int, events: list[Any]) -> None:
    for event in events:
        async with unit_of_work(db) as session:
            await lock_installation(session, installation_id)
            await fold_payload(session, installation_id, event.event_type, json.loads(event.body))


async def _built_installation(db: Database) -> int:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        await rollups.rebuild_installation(session, installation_id)
    return installation_id


async def test_folding_keeps_the_rollups_whatever_the_delivery(db: Database) -> None:
    events = two_customers(FakeShop()).events
    in_order = await _built_installation(db)
    await _fold(db, in_order, events)
    expected = await rollup_rows(db, in_order)
    assert expected["hours"]
    assert expected["months"]
    assert sum(row[4] for row in expected["hours"]) == await _count_checkouts(db, in_order)
    # Rebuilding computes the very rows the folds kept current.
    assert await _rebuilt_rows(db, in_order) == expected

    rng = random.Random(7)
    for _ in range(3):  # shuffled, with every event delivered twice
        shuffled = [event for event in events for _ in range(2)]
        rng.shuffle(shuffled)
        installation_id = await _built_installation(db)
        await _fold(db, installation_id, shuffled)
        assert await rollup_rows(db, installation_id) == expected

    # And the reports read from them what the direct queries say.
    period = Period(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    now = datetime(2099, 6, 1, tzinfo=UTC)
    async with db.session() as session:
        figures = (
            await funnel(session, in_order, period),
            await cohort_retention(session, in_order, period, now=now),
        )
    async with _direct(db, in_order) as session:
        assert figures == (
            await funnel(session, in_order, period),
            await cohort_retention(session, in_order, period, now=now),
        )


async def _count_checkouts(db: Database, installation_id: int) -> int:
    async with db.session() as session:
        rows = await session.scalars(
            select(Checkout.id).where(Checkout.installation_id == installation_id)
        )
        return len(list(rows))


async def test_a_new_shop_reads_its_reports_from_rollups_from_the_first_webhook(
    app_server: Any, saleor: Any, db: Database, installation_id: int
) -> None:
    from plugin.db.base import utcnow
    from tests.conftest import eventually

    async with db.session() as session:
        assert await rollups.is_built(session, installation_id)  # rebuilt at install
    shop = FakeShop(now=utcnow() - timedelta(hours=2))
    placed = shop.create_order(email="first@example.com", lines=[("Mug", "MUG", "Home", 1, 9.0)])
    for event in placed + shop.pay_order(placed[0].object_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def rolled_up() -> int:
        async with db.session() as session:
            rows = await session.scalars(
                select(CustomerMonth).where(CustomerMonth.installation_id == installation_id)
            )
            return len(list(rows))

    assert await eventually(rolled_up) == 1
