"""Analytics reports (plugin/analytics/) as GraphQL objects: money always per currency."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import strawberry

from plugin.analytics import ad_costs, cohorts, funnel
from plugin.analytics import customers as behaviour_report
from plugin.analytics import revenue as revenue_report
from plugin.api.ids import to_global_id
from plugin.api.types.common import Money
from plugin.segments.rfm import MatrixCell


def _money(amount: Decimal | None, currency: str) -> Money | None:
    return Money.of(amount, currency)


def _sure(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


@strawberry.input(description="Whole UTC days, both included.")
class AnalyticsPeriod:
    from_: date = strawberry.field(name="from", description="First day.")
    to: date = strawberry.field(description="Last day (included).")


@strawberry.enum(description="How finely revenue by source is grouped.")
class SourceLevel(enum.Enum):
    SOURCE = "source"
    MEDIUM = "medium"
    CAMPAIGN = "campaign"


@strawberry.type(description="One step of the checkout funnel.")
class FunnelStep:
    key: str = strawberry.field(
        description="started, contact, ordered, paid, fulfilled or delivered."
    )
    count: int | None = strawberry.field(description="Null when the step is not measured.")
    conversion: float | None = strawberry.field(description="Share of the previous step.")
    drop_off: int | None = strawberry.field(description="Checkouts lost since the previous step.")
    of_started: float | None = strawberry.field(description="Share of the started checkouts.")
    not_measured: str | None = strawberry.field(description="Why the step is not measured.")

    @classmethod
    def of(cls, step: funnel.FunnelStep) -> FunnelStep:
        return cls(
            key=step.key,
            count=step.count,
            conversion=step.conversion,
            drop_off=step.drop_off,
            of_started=step.of_started,
            not_measured=step.not_measured,
        )


@strawberry.type(
    description="Checkouts started in the period, followed to delivery; each step counts "
    "those that reached it and every step before."
)
class Funnel:
    steps: list[FunnelStep]

    @classmethod
    def of(cls, found: funnel.Funnel) -> Funnel:
        return cls(steps=[FunnelStep.of(s) for s in found.steps])


@strawberry.type(description="Customers whose first order fell in one month, and their returns.")
class Cohort:
    month: date = strawberry.field(description="First day of the cohort's month.")
    size: int
    active: list[int] = strawberry.field(
        description="Customers with an order in month k after the cohort month (k = 0 first)."
    )
    retention: list[float] = strawberry.field(description="active[k] / size.")

    @classmethod
    def of(cls, cohort: cohorts.Cohort) -> Cohort:
        return cls(
            month=cohort.month,
            size=cohort.size,
            active=list(cohort.active),
            retention=list(cohort.retention),
        )


@strawberry.type(description="Average checks of acquired customers, in one currency.")
class AverageChecks:
    currency: str
    first_order: Money | None
    first_order_count: int
    first_month: Money | None = strawberry.field(description="Orders within 30 days of the first.")
    first_month_count: int
    first_quarter: Money | None = strawberry.field(
        description="Orders within 90 days of the first."
    )
    first_quarter_count: int

    @classmethod
    def of(cls, checks: behaviour_report.AverageChecks) -> AverageChecks:
        c = checks.currency
        return cls(
            currency=c,
            first_order=_money(checks.first_order, c),
            first_order_count=checks.first_order_count,
            first_month=_money(checks.first_month, c),
            first_month_count=checks.first_month_count,
            first_quarter=_money(checks.first_quarter, c),
            first_quarter_count=checks.first_quarter_count,
        )


@strawberry.type(description="Churn per first-order month.")
class CohortChurn:
    month: date
    customers: int
    churned: int
    churn_rate: float | None

    @classmethod
    def of(cls, row: behaviour_report.CohortChurn) -> CohortChurn:
        return cls(
            month=row.month, customers=row.customers, churned=row.churned, churn_rate=row.churn_rate
        )


@strawberry.type(description="How the customers acquired in the period (first order in it) behave.")
class CustomerBehaviour:
    customers: int
    repeat_customers: int
    repeat_rate: float | None
    days_to_first_purchase: float | None
    days_to_first_purchase_measured: int
    days_between_orders: float | None
    average_checks: list[AverageChecks]
    churn_days: int
    churned: int
    churn_rate: float | None

    @classmethod
    def of(cls, found: behaviour_report.CustomerBehaviour) -> CustomerBehaviour:
        return cls(
            customers=found.customers,
            repeat_customers=found.repeat_customers,
            repeat_rate=found.repeat_rate,
            days_to_first_purchase=found.days_to_first_purchase,
            days_to_first_purchase_measured=found.days_to_first_purchase_measured,
            days_between_orders=found.days_between_orders,
            average_checks=[AverageChecks.of(c) for c in found.average_checks],
            churn_days=found.churn_days,
            churned=found.churned,
            churn_rate=found.churn_rate,
        )


@strawberry.type(description="Orders placed in the period with one UTM source (medium, campaign).")
class SourceRevenue:
    source: str | None = strawberry.field(description="Null: orders without a UTM source.")
    medium: str | None
    campaign: str | None
    currency: str = strawberry.field(
        description="One row per source and currency: the money of two currencies is never "
        "added up."
    )
    orders: int = strawberry.field(description="Active orders (placed, not cancelled).")
    customers: int = strawberry.field(description="Customers with an active order.")
    revenue: Money = strawberry.field(
        description="Money kept: Σ (charged − refunded) of every order whatever its status, "
        "a cancelled order whose charge was never refunded included (as `totalSpent`)."
    )

    @classmethod
    def of(cls, row: revenue_report.SourceRevenue) -> SourceRevenue:
        return cls(
            source=row.source,
            medium=row.medium,
            campaign=row.campaign,
            currency=row.currency,
            orders=row.orders,
            customers=row.customers,
            revenue=_sure(row.revenue, row.currency),
        )


@strawberry.type(description="Lifetime value of the customers of one first-touch source.")
class SourceLtv:
    source: str | None
    currency: str = strawberry.field(description="One row per source and currency.")
    customers: int = strawberry.field(
        description="Customers acquired (first active order) with an active order in this currency."
    )
    revenue: Money = strawberry.field(
        description="Everything they spent so far: money kept of every order, cancelled ones "
        "included (as `totalSpent`)."
    )
    ltv: Money | None

    @classmethod
    def of(cls, row: revenue_report.SourceLtv) -> SourceLtv:
        return cls(
            source=row.source,
            currency=row.currency,
            customers=row.customers,
            revenue=_sure(row.revenue, row.currency),
            ltv=_money(row.ltv, row.currency),
        )


@strawberry.type(description="A segment's members' value in one currency.")
class SegmentCurrencyValue:
    currency: str
    customers: int = strawberry.field(description="Members with an active order in it.")
    revenue: Money = strawberry.field(
        description="Lifetime money kept, so far: every order, cancelled ones included."
    )
    ltv: Money | None
    period_orders: int = strawberry.field(description="Active orders placed in the period.")
    period_revenue: Money = strawberry.field(
        description="Money kept of every order placed in the period, cancelled ones included."
    )

    @classmethod
    def of(cls, row: revenue_report.SegmentCurrencyValue) -> SegmentCurrencyValue:
        c = row.currency
        return cls(
            currency=c,
            customers=row.customers,
            revenue=_sure(row.revenue, c),
            ltv=_money(row.ltv, c),
            period_orders=row.period_orders,
            period_revenue=_sure(row.period_revenue, c),
        )


@strawberry.type(description="A segment with its current members' value.")
class SegmentRevenue:
    slug: str
    name: str
    members: int
    currencies: list[SegmentCurrencyValue]

    @classmethod
    def of(cls, row: revenue_report.SegmentValue) -> SegmentRevenue:
        return cls(
            slug=row.key,
            name=row.name,
            members=row.members,
            currencies=[SegmentCurrencyValue.of(v) for v in row.currencies],
        )


@strawberry.type(description="One cell of the RFM grid (recency × frequency).")
class RfmCell:
    recency: int
    frequency: int
    name: str
    customers: int
    revenue: Money

    @classmethod
    def of(cls, cell: MatrixCell, currency: str) -> RfmCell:
        return cls(
            recency=cell.recency,
            frequency=cell.frequency,
            name=cell.name,
            customers=cell.customers,
            revenue=_sure(cell.revenue, currency),
        )


@strawberry.type(description="The RFM grid of one currency.")
class RfmRevenue:
    currency: str
    cells: list[RfmCell]

    @classmethod
    def of(cls, row: revenue_report.RfmRevenue) -> RfmRevenue:
        return cls(currency=row.currency, cells=[RfmCell.of(c, row.currency) for c in row.cells])


@strawberry.type(description="Return on ad spend of one source in one currency.")
class SourceRoi:
    source: str | None
    currency: str
    revenue: Money
    cost: Money = strawberry.field(description="Prorated to the period.")
    roi: Decimal | None = strawberry.field(
        description="(revenue − cost) ÷ cost; null when nothing was spent."
    )

    @classmethod
    def of(cls, row: ad_costs.SourceRoi) -> SourceRoi:
        return cls(
            source=row.source,
            currency=row.currency,
            revenue=_sure(row.revenue, row.currency),
            cost=_sure(row.cost, row.currency),
            roi=row.roi,
        )


@strawberry.type(description="Advertising spend on a source over whole UTC days.")
class AdCost:
    pk: strawberry.Private[int]
    source: str
    medium: str | None
    campaign: str | None
    day_from: date
    day_to: date
    amount: Money
    created_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("AdCost", self.pk))

    @classmethod
    def of(cls, entry: ad_costs.AdCostEntry) -> AdCost:
        return cls(
            pk=entry.id,
            source=entry.source,
            medium=entry.medium,
            campaign=entry.campaign,
            day_from=entry.day_from,
            day_to=entry.day_to,
            amount=_sure(entry.amount, entry.currency),
            created_at=entry.created_at,
        )
