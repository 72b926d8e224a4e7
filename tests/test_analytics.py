"""Analytics on a tiny shop whose every figure can be checked by hand.

The shop (NOW = 15 June 2026; Q1 = January to March 2026):
- A: joined 1 Jan; checkouts 5 Jan and 4 Feb; orders 10 Jan 100 USD (google/cpc),
  5 Feb 50 USD (newsletter), 20 Feb 999 USD unpaid (google), 1 Apr 30 USD (no source);
- B: guest; checkout 18 Jan; order 20 Jan 200 USD (newsletter), 20 refunded;
- C: joined 10 Mar (after buying); checkout 12 Feb; orders 14 Feb 80 EUR (google) and
  1 Mar 40 EUR (no source); channel "pos";
- D: orders 15 Dec 2025 and 25 Jan 2026, 70 USD each (no source): acquired before Q1;
- E: one order 2 Feb, 60 USD paid (no source), then cancelled and never refunded: never a
  customer (no order, not acquired, no RFM score), but the 60 the shop kept is revenue —
  money kept is Σ max(charged − refunded, 0) over every order whatever its status, as the
  profile's total spent (issue 15, point 6); counts are of active orders only.
Every order is at noon, in channel "web" unless said; a second installation holds a copy of
A that must never count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics.ad_costs import (
    AdCostEntry,
    InvalidAdCost,
    add_ad_cost,
    delete_ad_cost,
    list_ad_costs,
    prorated,
    roi_by_source,
)
from plugin.analytics.cohorts import cohort_retention
from plugin.analytics.customers import churn_by_cohort, customer_behaviour
from plugin.analytics.funnel import funnel
from plugin.analytics.period import Period
from plugin.analytics.revenue import (
    ltv_by_source,
    revenue_by_segment,
    revenue_by_source,
    rfm_revenue,
)
from plugin.commerce.models import Checkout, CheckoutState, Order
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.aggregates import recompute
from plugin.profiles.models import Profile, ProfileTotal
from plugin.segments.models import Segment, SegmentMembership
from plugin.segments.rfm import refresh_rfm, rfm_matrix
from tests.conftest import new_installation

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
Q1 = Period.days(date(2026, 1, 1), date(2026, 3, 31))
JUNE = Period.days(date(2026, 6, 1), date(2026, 6, 30))


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def d(value: str) -> Decimal:
    return Decimal(value)


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def add_order(
    session: AsyncSession,
    installation_id: int,
    profile: Profile | None,
    placed_at: datetime,
    total: str,
    *,
    currency: str = "USD",
    paid: bool = True,
    status: str = "UNFULFILLED",
    refunded: str = "0",
    channel: str = "web",
    source: str | None = None,
    medium: str | None = None,
) -> Order:
    order = Order(
        installation_id=installation_id,
        saleor_id=_id("order"),
        profile_id=profile.id if profile else None,
        status=status,
        is_paid=paid,
        charge_status="FULL" if paid else "NONE",
        channel_slug=channel,
        currency=currency,
        total_gross=d(total),
        total_charged=d(total) if paid else d("0"),
        total_refunded=d(refunded),
        utm_source=source,
        utm_medium=medium,
        placed_at=placed_at,
        source_updated_at=placed_at,
    )
    session.add(order)
    return order


def add_checkout(
    session: AsyncSession,
    installation_id: int,
    started_at: datetime,
    *,
    profile: Profile | None = None,
    email: str | None = None,
    order: Order | None = None,
    channel: str = "web",
    source: str | None = None,
) -> Checkout:
    checkout = Checkout(
        installation_id=installation_id,
        saleor_id=_id("checkout"),
        profile_id=profile.id if profile else None,
        email=email,
        channel_slug=channel,
        currency="USD",
        utm_source=source,
        state=CheckoutState.CONVERTED if order else CheckoutState.OPEN,
        order_saleor_id=order.saleor_id if order else None,
        started_at=started_at,
        source_updated_at=started_at,
    )
    session.add(checkout)
    return checkout


async def add_profile(session: AsyncSession, installation_id: int, **fields: object) -> Profile:
    profile = Profile(installation_id=installation_id, **fields)
    session.add(profile)
    await session.flush()
    return profile


@dataclass(frozen=True)
class Shop:
    installation_id: int
    other_id: int
    profiles: dict[str, int]


async def _people(session: AsyncSession, installation_id: int) -> dict[str, Profile]:
    a = await add_profile(
        session, installation_id, date_joined=at(2026, 1, 1, 0), utm_source="google", channel="web"
    )
    b = await add_profile(session, installation_id, utm_source="newsletter", channel="web")
    c = await add_profile(
        session, installation_id, date_joined=at(2026, 3, 10), utm_source="google", channel="pos"
    )
    e = await add_profile(session, installation_id, channel="web")
    d_ = await add_profile(session, installation_id, channel="web")
    add_checkout(session, installation_id, at(2026, 1, 5), profile=a)
    add_checkout(session, installation_id, at(2026, 2, 4), profile=a)  # after buying: ignored
    add_order(session, installation_id, a, at(2026, 1, 10), "100", source="google", medium="cpc")
    add_order(session, installation_id, a, at(2026, 2, 5), "50", source="newsletter")
    add_order(session, installation_id, a, at(2026, 2, 20), "999", paid=False, source="google")
    add_order(session, installation_id, a, at(2026, 4, 1), "30")
    add_checkout(session, installation_id, at(2026, 1, 18), profile=b)
    add_order(
        session, installation_id, b, at(2026, 1, 20), "200", refunded="20", source="newsletter"
    )
    add_checkout(session, installation_id, at(2026, 2, 12), profile=c)
    add_order(
        session,
        installation_id,
        c,
        at(2026, 2, 14),
        "80",
        currency="EUR",
        channel="pos",
        source="google",
    )
    add_order(session, installation_id, c, at(2026, 3, 1), "40", currency="EUR", channel="pos")
    add_order(session, installation_id, d_, at(2025, 12, 15), "70")
    add_order(session, installation_id, d_, at(2026, 1, 25), "70")
    add_order(session, installation_id, e, at(2026, 2, 2), "60", status="CANCELED")
    people = {"A": a, "B": b, "C": c, "D": d_, "E": e}
    for profile in people.values():
        await recompute(session, profile)
    return people


async def build_shop(db: Database) -> Shop:
    installation_id = await new_installation(db)
    other_id = await new_installation(db)
    async with unit_of_work(db) as session:
        people = await _people(session, installation_id)
        # Another shop: the same customer A, who must never show up in the first shop.
        stranger = await add_profile(
            session, other_id, date_joined=at(2026, 1, 1), utm_source="google", channel="web"
        )
        add_order(session, other_id, stranger, at(2026, 1, 11), "500", source="google")
        add_order(session, other_id, stranger, at(2026, 2, 11), "500", source="google")
        await recompute(session, stranger)
        segment = Segment(
            installation_id=other_id, key="vip", name="VIP", rule={"field": "email", "op": "is_set"}
        )
        session.add(segment)
        await session.flush()
        session.add(
            SegmentMembership(
                installation_id=other_id, segment_id=segment.id, profile_id=stranger.id, since=NOW
            )
        )
    return Shop(installation_id, other_id, {k: p.id for k, p in people.items()})


@pytest.fixture
async def shop(db: Database) -> Shop:
    return await build_shop(db)


class TestPeriod:
    def test_days_are_whole_utc_days_both_included(self) -> None:
        assert Q1.start == at(2026, 1, 1, 0)
        assert Q1.end == at(2026, 4, 1, 0)

    def test_a_period_must_be_aware_and_forward(self) -> None:
        with pytest.raises(ValueError, match="before"):
            Period(at(2026, 2, 1), at(2026, 1, 1))
        with pytest.raises(ValueError, match="aware"):
            Period(datetime(2026, 1, 1), at(2026, 2, 1))


class TestFunnel:
    async def _checkouts(self, db: Database) -> tuple[int, int]:
        """June: c1 nothing; c2 e-mail; c3 unpaid order; c4 paid; c5 paid and shipped (no
        e-mail on the snapshot); c6 shipped but unpaid (cash on delivery: stops at "ordered");
        c7 draft order; c8 in "pos"."""
        installation_id = await new_installation(db)
        other_id = await new_installation(db)
        async with unit_of_work(db) as session:
            day = at(2026, 6, 10)
            mail = "x@example.com"
            o3 = add_order(session, installation_id, None, day, "10", paid=False, source="google")
            o4 = add_order(session, installation_id, None, day, "10")
            o5 = add_order(
                session, installation_id, None, day, "10", status="FULFILLED", source="google"
            )
            o6 = add_order(session, installation_id, None, day, "1", status="FULFILLED", paid=False)
            o7 = add_order(session, installation_id, None, day, "10", status="DRAFT")
            add_checkout(session, installation_id, day)
            add_checkout(session, installation_id, day, email=mail)
            add_checkout(session, installation_id, day, email=mail, order=o3, source="google")
            add_checkout(session, installation_id, day, email=mail, order=o4)
            add_checkout(session, installation_id, day, order=o5, source="google")
            add_checkout(session, installation_id, day, email=mail, order=o6)
            add_checkout(session, installation_id, day, email=mail, order=o7)
            add_checkout(session, installation_id, day, email=mail, channel="pos", source="google")
            add_checkout(session, installation_id, at(2026, 5, 31, 23), email=mail)  # before June
            theirs = add_order(session, other_id, None, day, "10")
            add_checkout(session, other_id, day, email=mail, order=theirs)
        return installation_id, other_id

    async def test_each_step_counts_checkouts_that_reached_it(self, db: Database) -> None:
        installation_id, other_id = await self._checkouts(db)
        async with db.session() as session:
            result = await funnel(session, installation_id, JUNE)
            theirs = await funnel(session, other_id, JUNE)
        assert [s.key for s in result.steps] == [
            "started",
            "contact",
            "ordered",
            "paid",
            "fulfilled",
            "delivered",
        ]
        assert [s.count for s in result.steps[:5]] == [8, 7, 4, 2, 1]
        assert [s.drop_off for s in result.steps[:5]] == [None, 1, 3, 2, 1]
        assert result.steps[1].conversion == 0.875
        assert result.steps[4].of_started == 0.125
        delivered = result.steps[5]
        assert (delivered.count, delivered.drop_off) == (None, None)
        assert delivered.not_measured
        assert [s.count for s in theirs.steps[:5]] == [1, 1, 1, 1, 0]

    async def test_channel_and_source_filter_the_checkouts(self, db: Database) -> None:
        installation_id, _ = await self._checkouts(db)
        async with db.session() as session:
            web = await funnel(session, installation_id, JUNE, channel="web")
            google = await funnel(session, installation_id, JUNE, source="google")
            both = await funnel(session, installation_id, JUNE, channel="web", source="google")
            may = await funnel(
                session, installation_id, Period.days(date(2026, 5, 1), date(2026, 5, 31))
            )
        assert [s.count for s in web.steps[:5]] == [7, 6, 4, 2, 1]
        assert [s.count for s in google.steps[:5]] == [3, 3, 2, 1, 1]
        assert [s.count for s in both.steps[:5]] == [2, 2, 2, 1, 1]
        assert [s.count for s in may.steps[:5]] == [1, 1, 0, 0, 0]
        assert may.steps[2].conversion == 0.0


class TestCohorts:
    async def test_retention_matrix_by_first_order_month(self, db: Database, shop: Shop) -> None:
        async with db.session() as session:
            result = await cohort_retention(session, shop.installation_id, Q1, now=NOW)
            theirs = await cohort_retention(session, shop.other_id, Q1, now=NOW)
        assert [(c.month, c.size) for c in result.cohorts] == [
            (date(2026, 1, 1), 2),
            (date(2026, 2, 1), 1),
        ]
        january, february = result.cohorts
        assert january.active == (2, 1, 0, 1, 0, 0)  # A and B; A in Feb and Apr
        assert january.retention == (1.0, 0.5, 0.0, 0.5, 0.0, 0.0)
        assert february.active == (1, 1, 0, 0, 0)
        assert [(c.month, c.active[:2]) for c in theirs.cohorts] == [(date(2026, 1, 1), (1, 1))]

    async def test_filters_pick_customers_by_channel_and_first_touch(
        self, db: Database, shop: Shop
    ) -> None:
        async with db.session() as session:
            google = await cohort_retention(
                session, shop.installation_id, Q1, source="google", now=NOW
            )
            pos = await cohort_retention(session, shop.installation_id, Q1, channel="pos", now=NOW)
            march = await cohort_retention(
                session,
                shop.installation_id,
                Period.days(date(2026, 3, 1), date(2026, 3, 31)),
                now=NOW,
            )
        assert [(c.month, c.size, c.active) for c in google.cohorts] == [
            (date(2026, 1, 1), 1, (1, 1, 0, 1, 0, 0)),
            (date(2026, 2, 1), 1, (1, 1, 0, 0, 0)),
        ]
        assert [(c.month, c.size) for c in pos.cohorts] == [(date(2026, 2, 1), 1)]
        assert march.cohorts == ()


class TestCustomerBehaviour:
    async def test_figures_of_the_customers_acquired_in_the_period(
        self, db: Database, shop: Shop
    ) -> None:
        async with db.session() as session:
            result = await customer_behaviour(session, shop.installation_id, Q1, now=NOW)
        assert (result.customers, result.repeat_customers) == (3, 2)  # A, B, C; A and C
        assert result.repeat_rate == 0.6667
        # A: joined 1 Jan 00:00 → 10 Jan noon = 9.5; B: checkout 18 → 20 Jan = 2;
        # C: joined after buying, checkout 12 → 14 Feb = 2.
        assert result.days_to_first_purchase == 4.5
        assert result.days_to_first_purchase_measured == 3
        # A: 10 Jan → 1 Apr = 81 days over 3 gaps; C: 14 Feb → 1 Mar = 15 days over 1.
        assert result.days_between_orders == 24.0
        # Paid orders only (A's 999 is unpaid); the windows include the first order.
        eur, usd = result.average_checks
        assert (usd.currency, usd.first_order, usd.first_order_count) == ("USD", d("150"), 2)
        assert (usd.first_month, usd.first_month_count) == (d("116.67"), 3)
        assert (usd.first_quarter, usd.first_quarter_count) == (d("95.00"), 4)
        assert (eur.currency, eur.first_order, eur.first_month, eur.first_quarter) == (
            "EUR",
            d("80"),
            d("60"),
            d("60"),
        )
        # Last order before 17 March: B (20 Jan) and C (1 Mar).
        assert (result.churn_days, result.churned, result.churn_rate) == (90, 2, 0.6667)

    async def test_filters_and_tenancy(self, db: Database, shop: Shop) -> None:
        async with db.session() as session:
            pos = await customer_behaviour(
                session, shop.installation_id, Q1, channel="pos", now=NOW
            )
            news = await customer_behaviour(
                session, shop.installation_id, Q1, source="newsletter", now=NOW
            )
            theirs = await customer_behaviour(session, shop.other_id, Q1, now=NOW)
            nobody = await customer_behaviour(session, shop.installation_id, JUNE, now=NOW)
        assert (pos.customers, pos.repeat_customers, pos.days_between_orders) == (1, 1, 15.0)
        assert [c.currency for c in pos.average_checks] == ["EUR"]
        assert (news.customers, news.repeat_rate, news.days_to_first_purchase) == (1, 0.0, 2.0)
        assert news.days_between_orders is None
        assert (theirs.customers, theirs.repeat_customers) == (1, 1)
        assert theirs.average_checks[0].first_order == d("500")
        assert (nobody.customers, nobody.repeat_rate, nobody.churn_rate) == (0, None, None)
        assert nobody.average_checks == ()

    async def test_churn_by_cohort(self, db: Database, shop: Shop) -> None:
        async with db.session() as session:
            result = await churn_by_cohort(session, shop.installation_id, Q1, now=NOW)
            later = await churn_by_cohort(
                session, shop.installation_id, Q1, now=NOW + timedelta(days=90)
            )
        assert [(c.month, c.customers, c.churned, c.churn_rate) for c in result] == [
            (date(2026, 1, 1), 2, 1, 0.5),
            (date(2026, 2, 1), 1, 1, 1.0),
        ]
        assert [c.churned for c in later] == [2, 1]


class TestRevenue:
    async def test_revenue_by_the_orders_own_source(self, db: Database, shop: Shop) -> None:
        async with db.session() as session:
            rows = await revenue_by_source(session, shop.installation_id, Q1)
            pos = await revenue_by_source(session, shop.installation_id, Q1, channel="pos")
            google = await revenue_by_source(session, shop.installation_id, Q1, source="google")
            mediums = await revenue_by_source(
                session, shop.installation_id, Q1, source="google", level="medium"
            )
        assert [(r.source, r.currency, r.orders, r.customers, r.revenue) for r in rows] == [
            ("google", "EUR", 1, 1, d("80")),
            ("google", "USD", 2, 1, d("100")),  # the unpaid order kept nothing
            ("newsletter", "USD", 2, 2, d("230")),  # 50 + 200 − 20 refunded
            (None, "EUR", 1, 1, d("40")),
            # D's January order (the Apr and Dec ones are out) and E's cancelled 60, kept:
            # money, but neither an order nor a customer
            (None, "USD", 1, 1, d("130")),
        ]
        assert [(r.source, r.currency, r.revenue) for r in pos] == [
            ("google", "EUR", d("80")),
            (None, "EUR", d("40")),
        ]
        assert [r.currency for r in google] == ["EUR", "USD"]
        assert [(r.medium, r.currency, r.orders, r.revenue) for r in mediums] == [
            (None, "EUR", 1, d("80")),
            (None, "USD", 1, d("0")),
            ("cpc", "USD", 1, d("100")),
        ]
        assert {r.campaign for r in mediums} == {None}

    async def test_ltv_by_first_touch_source(self, db: Database, shop: Shop) -> None:
        async with db.session() as session:
            acquired = await ltv_by_source(session, shop.installation_id, Q1)
            ever = await ltv_by_source(session, shop.installation_id)
            web = await ltv_by_source(session, shop.installation_id, Q1, channel="web")
            theirs = await ltv_by_source(session, shop.other_id, Q1)
        assert [(r.source, r.currency, r.customers, r.revenue, r.ltv) for r in acquired] == [
            ("google", "EUR", 1, d("120"), d("120.00")),
            ("google", "USD", 1, d("180"), d("180.00")),  # A's whole life, April included
            ("newsletter", "USD", 1, d("180"), d("180.00")),
        ]
        assert (ever[-1].source, ever[-1].currency, ever[-1].revenue) == (None, "USD", d("140"))
        assert [(r.source, r.currency) for r in web] == [("google", "USD"), ("newsletter", "USD")]
        assert [(r.currency, r.revenue) for r in theirs] == [("USD", d("1000"))]

    async def test_value_of_each_segment(self, db: Database, shop: Shop) -> None:
        async with unit_of_work(db) as session:
            segments = {}
            for key in ("vip", "euro", "empty"):
                segments[key] = Segment(
                    installation_id=shop.installation_id,
                    key=key,
                    name=key.upper(),
                    rule={"field": "email", "op": "is_set"},
                )
                session.add(segments[key])
            await session.flush()
            for key, person in (("vip", "A"), ("vip", "B"), ("euro", "C")):
                session.add(
                    SegmentMembership(
                        installation_id=shop.installation_id,
                        segment_id=segments[key].id,
                        profile_id=shop.profiles[person],
                        since=NOW,
                    )
                )
        async with db.session() as session:
            rows = await revenue_by_segment(session, shop.installation_id, Q1)
            web = await revenue_by_segment(session, shop.installation_id, Q1, channel="web")
        assert [(s.key, s.members) for s in rows] == [("empty", 0), ("euro", 1), ("vip", 2)]
        empty, euro, vip = rows
        assert empty.currencies == ()
        assert [
            (v.currency, v.customers, v.revenue, v.ltv, v.period_orders, v.period_revenue)
            for v in (*euro.currencies, *vip.currencies)
        ] == [
            ("EUR", 1, d("120"), d("120.00"), 2, d("120")),
            ("USD", 2, d("360"), d("180.00"), 4, d("330")),  # A's April order is out of Q1
        ]
        assert [s.currencies for s in web if s.key == "euro"] == [()]

    async def test_rfm_revenue_reuses_the_matrix_per_currency(
        self, db: Database, shop: Shop
    ) -> None:
        async with unit_of_work(db) as session:
            await refresh_rfm(session, shop.installation_id, NOW)
        async with db.session() as session:
            grids = await rfm_revenue(session, shop.installation_id)
            usd = await rfm_matrix(session, shop.installation_id, "USD")
        assert [g.currency for g in grids] == ["EUR", "USD"]
        assert list(grids[1].cells) == usd
        assert sum(c.revenue for c in usd) == d("500")  # A 180, B 180, D 140
        assert sum(c.customers for c in grids[0].cells) == 1


ALL_TIME = Period.days(date(2020, 1, 1), date(2030, 12, 31))


async def _spent_by_currency(session: AsyncSession, installation_id: int) -> dict[str, Decimal]:
    """Σ of the customers' total spent per currency (the API's `spentByCurrency`)."""
    rows = await session.execute(
        select(ProfileTotal.currency, func.sum(ProfileTotal.total_spent))
        .where(ProfileTotal.installation_id == installation_id)
        .group_by(ProfileTotal.currency)
    )
    return {currency: Decimal(total) for currency, total in rows}


async def _revenue_by_currency(session: AsyncSession, installation_id: int) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in await revenue_by_source(session, installation_id, ALL_TIME):
        totals[row.currency] = totals.get(row.currency, d("0")) + row.revenue
    return totals


class TestCancelledButKept:
    """A cancelled order whose charge was never refunded is money the shop kept (issue 15,
    point 6): every revenue figure counts it, as the profile's total spent does; no count
    of orders or customers does."""

    async def _shop(self, db: Database) -> int:
        installation_id = await new_installation(db)
        async with unit_of_work(db) as session:
            f = await add_profile(session, installation_id, utm_source="google", channel="web")
            e = await add_profile(session, installation_id, channel="web")
            add_order(session, installation_id, f, at(2026, 1, 10), "100", source="google")
            for placed_at, total, currency, refunded in (
                (at(2026, 1, 20), "168.87", "USD", "0"),  # cancelled, never refunded: kept
                (at(2026, 1, 25), "50", "USD", "50"),  # refunded in full: nothing kept
                (at(2026, 2, 1), "40", "EUR", "10"),  # 30 kept, no active EUR order
            ):
                add_order(
                    session,
                    installation_id,
                    f,
                    placed_at,
                    total,
                    currency=currency,
                    refunded=refunded,
                    status="CANCELED",
                    source="google",
                )
            add_order(session, installation_id, e, at(2026, 2, 2), "60", status="CANCELED")
            add_order(session, installation_id, e, at(2026, 2, 3), "9", status="DRAFT", paid=False)
            for profile in (f, e):
                await recompute(session, profile)
            segment = Segment(
                installation_id=installation_id,
                key="all",
                name="All",
                rule={"field": "email", "op": "is_set"},
            )
            session.add(segment)
            await session.flush()
            for profile in (f, e):
                session.add(
                    SegmentMembership(
                        installation_id=installation_id,
                        segment_id=segment.id,
                        profile_id=profile.id,
                        since=NOW,
                    )
                )
            await refresh_rfm(session, installation_id, NOW)
        return installation_id

    async def test_every_revenue_figure_counts_it(self, db: Database) -> None:
        installation_id = await self._shop(db)
        async with db.session() as session:
            sources = await revenue_by_source(session, installation_id, Q1)
            ltv = await ltv_by_source(session, installation_id, Q1)
            (segment,) = await revenue_by_segment(session, installation_id, Q1)
            grids = await rfm_revenue(session, installation_id)
        assert [(r.source, r.currency, r.orders, r.customers, r.revenue) for r in sources] == [
            ("google", "EUR", 0, 0, d("30")),  # kept, but no order and no customer
            ("google", "USD", 1, 1, d("268.87")),  # 100 + 168.87; the refunded 50 kept nothing
            (None, "USD", 0, 0, d("60")),  # E: money kept, never a customer
        ]
        # LTV: F was acquired (first active order 10 Jan); E never was
        assert [(r.source, r.currency, r.customers, r.revenue, r.ltv) for r in ltv] == [
            ("google", "EUR", 0, d("30"), None),
            ("google", "USD", 1, d("268.87"), d("268.87")),
        ]
        assert segment.members == 2
        assert [
            (v.currency, v.customers, v.revenue, v.ltv, v.period_orders, v.period_revenue)
            for v in segment.currencies
        ] == [
            ("EUR", 0, d("30"), None, 0, d("30")),
            ("USD", 1, d("328.87"), d("328.87"), 1, d("328.87")),
        ]
        # RFM scores F (an active order) with all F kept in USD; E has no recency to score
        assert [g.currency for g in grids] == ["USD"]
        assert sum(c.customers for c in grids[0].cells) == 1
        assert sum(c.revenue for c in grids[0].cells) == d("268.87")

    async def test_shop_revenue_is_the_sum_of_customers_total_spent(
        self, db: Database, shop: Shop
    ) -> None:
        kept_shop = await self._shop(db)
        async with db.session() as session:
            for installation_id in (shop.installation_id, kept_shop):
                spent = await _spent_by_currency(session, installation_id)
                assert await _revenue_by_currency(session, installation_id) == spent
            assert await _spent_by_currency(session, kept_shop) == {
                "EUR": d("30"),
                "USD": d("328.87"),
            }


class TestAdCosts:
    async def test_entries_are_validated(self, db: Database) -> None:
        installation_id = await new_installation(db)
        day = date(2026, 1, 1)
        bad: list[tuple[dict[str, object], str]] = [
            ({"amount": d("-1")}, "zero or more"),
            ({"amount": Decimal("NaN")}, "zero or more"),
            ({"day_to": date(2025, 12, 31)}, "after"),
            ({"currency": "US"}, "three-letter"),
            ({"currency": "U$D"}, "three-letter"),
            ({"source": "  "}, "required"),
        ]
        async with db.session() as session:
            for change, message in bad:
                fields: dict[str, object] = {
                    "source": "google",
                    "day_from": day,
                    "day_to": day,
                    "amount": d("10"),
                    "currency": "USD",
                    **change,
                }
                with pytest.raises(InvalidAdCost, match=message):
                    await add_ad_cost(session, installation_id, **fields)  # type: ignore[arg-type]

    async def test_add_list_delete_per_installation(self, db: Database) -> None:
        installation_id = await new_installation(db)
        other_id = await new_installation(db)
        async with unit_of_work(db) as session:
            free = await add_ad_cost(
                session,
                installation_id,
                source=" google ",
                medium="",
                day_from=date(2026, 1, 1),
                day_to=date(2026, 1, 1),
                amount=d("0"),
                currency="usd",
            )
            march = await add_ad_cost(
                session,
                installation_id,
                source="facebook",
                campaign="spring",
                day_from=date(2026, 3, 1),
                day_to=date(2026, 3, 31),
                amount=d("31"),
                currency="EUR",
            )
            theirs = await add_ad_cost(
                session,
                other_id,
                source="google",
                day_from=date(2026, 1, 1),
                day_to=date(2026, 1, 1),
                amount=d("5"),
                currency="USD",
            )
        assert isinstance(free, AdCostEntry)
        assert (free.source, free.medium, free.currency, free.amount) == (
            "google",
            None,
            "USD",
            d("0"),
        )
        async with unit_of_work(db) as session:
            assert await list_ad_costs(session, installation_id) == (free, march)
            february = Period.days(date(2026, 2, 1), date(2026, 2, 28))
            assert await list_ad_costs(session, installation_id, period=february) == ()
            assert await list_ad_costs(session, installation_id, source="facebook") == (march,)
            assert await delete_ad_cost(session, installation_id, theirs.id) is False
            assert await delete_ad_cost(session, installation_id, free.id) is True
            assert await delete_ad_cost(session, installation_id, free.id) is False
        async with db.session() as session:
            assert await list_ad_costs(session, installation_id) == (march,)
            assert await list_ad_costs(session, other_id) == (theirs,)

    def test_a_cost_is_prorated_by_the_time_it_overlaps(self) -> None:
        cost = AdCostEntry(
            1, "google", None, None, date(2026, 3, 22), date(2026, 4, 20), d("300"), "USD", NOW
        )
        assert prorated(cost, Q1) == d("100")  # 10 of its 30 days
        assert prorated(cost, Period(at(2026, 3, 31, 12), at(2026, 4, 1, 0))) == d("5")
        assert prorated(cost, Period.days(date(2026, 1, 1), date(2026, 12, 31))) == d("300")

    async def test_roi_per_source_and_currency(self, db: Database, shop: Shop) -> None:
        costs = [
            ("google", date(2026, 3, 22), date(2026, 4, 20), "300", "USD"),  # 10/30 days → 100
            ("google", date(2026, 2, 1), date(2026, 2, 28), "50", "USD"),
            ("google", date(2026, 1, 1), date(2026, 1, 31), "40", "EUR"),
            ("newsletter", date(2026, 1, 1), date(2026, 3, 31), "0", "USD"),
            ("facebook", date(2025, 12, 1), date(2025, 12, 31), "100", "USD"),  # before Q1
            ("facebook", date(2025, 12, 1), date(2026, 1, 31), "62", "USD"),  # 31/62 days → 31
        ]
        async with unit_of_work(db) as session:
            for source, first, last, amount, currency in costs:
                await add_ad_cost(
                    session,
                    shop.installation_id,
                    source=source,
                    day_from=first,
                    day_to=last,
                    amount=d(amount),
                    currency=currency,
                )
            await add_ad_cost(
                session,
                shop.other_id,
                source="google",
                day_from=date(2026, 1, 1),
                day_to=date(2026, 3, 31),
                amount=d("1000"),
                currency="USD",
            )
        async with db.session() as session:
            rows = await roi_by_source(session, shop.installation_id, Q1)
            google = await roi_by_source(session, shop.installation_id, Q1, source="google")
            theirs = await roi_by_source(session, shop.other_id, Q1)
        assert [(r.source, r.currency, r.revenue, r.cost, r.roi) for r in rows] == [
            ("facebook", "USD", d("0"), d("31"), d("-1")),
            ("google", "EUR", d("80"), d("40"), d("1")),
            ("google", "USD", d("100"), d("150"), d("-0.3333")),
            ("newsletter", "USD", d("230"), d("0"), None),
            (None, "EUR", d("40"), d("0"), None),
            (None, "USD", d("130"), d("0"), None),  # E's cancelled, kept 60 included
        ]
        assert [(r.currency, r.roi) for r in google] == [("EUR", d("1")), ("USD", d("-0.3333"))]
        assert [(r.source, r.revenue, r.cost, r.roi) for r in theirs] == [
            ("google", d("1000"), d("1000"), d("0"))
        ]
