"""`analytics(period, channel, source)`: the reports of plugin/analytics/, one field each.

Each report is one or a few aggregate statements, run only when selected; all need
MANAGE_ORDERS (they are sales figures).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import ad_costs, cohorts, customers, funnel, revenue
from plugin.analytics.period import Period
from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput
from plugin.api.fields import field as api_field
from plugin.api.types.analytics import (
    AdCost,
    AnalyticsPeriod,
    Cohort,
    CohortChurn,
    CustomerBehaviour,
    Funnel,
    RfmRevenue,
    SegmentRevenue,
    SourceLevel,
    SourceLtv,
    SourceRevenue,
    SourceRoi,
)

T = TypeVar("T")
MAX_PERIOD_DAYS = 3700  # about ten years
MAX_FILTER_LENGTH = 256


def period_of(given: AnalyticsPeriod) -> Period:
    if given.from_ > given.to:
        raise InvalidInput("`from` must not be after `to`.", field="period")
    if given.to - given.from_ > timedelta(days=MAX_PERIOD_DAYS):
        raise InvalidInput(f"A period spans at most {MAX_PERIOD_DAYS} days.", field="period")
    return Period.days(given.from_, given.to)


def _filter(value: str | None, field: str) -> str | None:
    if value is not None and len(value) > MAX_FILTER_LENGTH:
        raise InvalidInput(f"{field} is too long.", field=field)
    return value


@strawberry.type(
    description="Reports over a period (whole UTC days), optionally for one sales channel "
    "(slug) and one UTM source. Money is always per currency."
)
class Analytics:
    installation_id: strawberry.Private[int]
    period: strawberry.Private[Period]
    channel: strawberry.Private[str | None]
    source: strawberry.Private[str | None]

    async def _run(self, info: Info, work: Callable[[AsyncSession, int], Awaitable[T]]) -> T:
        async def run(session: AsyncSession) -> T:
            return await work(session, self.installation_id)

        return await info.context.run(run)

    @api_field("The checkout funnel: checkouts started in the period, followed to delivery.")
    async def funnel(self, info: Info) -> Funnel:
        found = await self._run(
            info,
            lambda s, i: funnel.funnel(s, i, self.period, channel=self.channel, source=self.source),
        )
        return Funnel.of(found)

    @api_field("Retention of the customers whose first order fell in the period, by month.")
    async def cohorts(self, info: Info) -> list[Cohort]:
        found = await self._run(
            info,
            lambda s, i: cohorts.cohort_retention(
                s, i, self.period, channel=self.channel, source=self.source, now=info.context.now
            ),
        )
        return [Cohort.of(c) for c in found.cohorts]

    @api_field("Repeat rate, timing, average checks and churn of the customers acquired.")
    async def behaviour(self, info: Info) -> CustomerBehaviour:
        found = await self._run(
            info,
            lambda s, i: customers.customer_behaviour(
                s, i, self.period, channel=self.channel, source=self.source, now=info.context.now
            ),
        )
        return CustomerBehaviour.of(found)

    @api_field("Churn of the customers acquired, per first-order month.")
    async def churn_by_cohort(self, info: Info) -> list[CohortChurn]:
        found = await self._run(
            info,
            lambda s, i: customers.churn_by_cohort(
                s, i, self.period, channel=self.channel, source=self.source, now=info.context.now
            ),
        )
        return [CohortChurn.of(c) for c in found]

    @api_field("Orders placed in the period by their own UTM source (medium, campaign).")
    async def revenue_by_source(
        self, info: Info, level: SourceLevel = SourceLevel.SOURCE
    ) -> list[SourceRevenue]:
        found = await self._run(
            info,
            lambda s, i: revenue.revenue_by_source(
                s, i, self.period, channel=self.channel, source=self.source, level=level.value
            ),
        )
        return [SourceRevenue.of(r) for r in found]

    @api_field("Lifetime value per first-touch source of the customers acquired in the period.")
    async def ltv_by_source(self, info: Info) -> list[SourceLtv]:
        found = await self._run(
            info,
            lambda s, i: revenue.ltv_by_source(
                s, i, self.period, channel=self.channel, source=self.source
            ),
        )
        return [SourceLtv.of(r) for r in found]

    @api_field(
        "Every segment: its members' lifetime value and their revenue in the period "
        "(the source filter does not apply)."
    )
    async def revenue_by_segment(self, info: Info) -> list[SegmentRevenue]:
        found = await self._run(
            info, lambda s, i: revenue.revenue_by_segment(s, i, self.period, channel=self.channel)
        )
        return [SegmentRevenue.of(r) for r in found]

    @api_field(
        "The RFM grid (customers and money kept per cell) of every scored currency; "
        "current, so neither the period nor the filters apply."
    )
    async def rfm_revenue(self, info: Info) -> list[RfmRevenue]:
        found = await self._run(info, lambda s, i: revenue.rfm_revenue(s, i))
        return [RfmRevenue.of(r) for r in found]

    @api_field(
        "Return on ad spend per source and currency in the period (the channel filter "
        "does not apply: costs have none)."
    )
    async def roi(self, info: Info) -> list[SourceRoi]:
        found = await self._run(
            info, lambda s, i: ad_costs.roi_by_source(s, i, self.period, source=self.source)
        )
        return [SourceRoi.of(r) for r in found]

    @api_field("The ad costs overlapping the period (of the source, if given), oldest first.")
    async def ad_costs(self, info: Info) -> list[AdCost]:
        found = await self._run(
            info,
            lambda s, i: ad_costs.list_ad_costs(s, i, period=self.period, source=self.source),
        )
        return [AdCost.of(e) for e in found]


@strawberry.type
class AnalyticsQueries:
    @api_field("Analytics reports of the shop. Needs MANAGE_ORDERS.")
    def analytics(
        self,
        info: Info,
        period: AnalyticsPeriod,
        channel: str | None = None,
        source: str | None = None,
    ) -> Analytics:
        viewer = info.context.require(*permissions.ANALYTICS)
        return Analytics(
            installation_id=viewer.installation_id,
            period=period_of(period),
            channel=_filter(channel, "channel"),
            source=_filter(source, "source"),
        )
