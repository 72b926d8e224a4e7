"""Delivery analytics: days from shipping to delivery by carrier, destination city and
month shipped, and the share of parcels that ran into an exception."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.tracking.models import Shipment

DAY = 86400.0


@dataclass(frozen=True)
class Row:
    carrier: str
    city: str | None
    shipped_at: datetime
    delivered_at: datetime | None
    had_exception: bool

    @property
    def days(self) -> float | None:
        if self.delivered_at is None:
            return None
        return max(0.0, (self.delivered_at - self.shipped_at).total_seconds() / DAY)


@dataclass(frozen=True)
class DeliveryGroup:
    key: str
    shipments: int
    delivered: int
    exceptions: int
    average_days: float | None
    median_days: float | None
    p90_days: float | None

    @property
    def exception_share(self) -> float:
        return self.exceptions / self.shipments if self.shipments else 0.0


@dataclass(frozen=True)
class DeliveryReport:
    total: DeliveryGroup
    by_carrier: list[DeliveryGroup]
    by_city: list[DeliveryGroup]
    by_month: list[DeliveryGroup]


def _p90(days: list[float]) -> float:
    if len(days) == 1:
        return days[0]
    return statistics.quantiles(days, n=10, method="inclusive")[-1]


def group(key: str, rows: Iterable[Row]) -> DeliveryGroup:
    rows = list(rows)
    days = sorted(d for r in rows if (d := r.days) is not None)
    return DeliveryGroup(
        key=key,
        shipments=len(rows),
        delivered=len(days),
        exceptions=sum(1 for r in rows if r.had_exception),
        average_days=round(statistics.fmean(days), 2) if days else None,
        median_days=round(statistics.median(days), 2) if days else None,
        p90_days=round(_p90(days), 2) if days else None,
    )


def _by(rows: list[Row], key: Callable[[Row], str]) -> list[DeliveryGroup]:
    buckets: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        buckets[key(row)].append(row)
    return [group(k, v) for k, v in sorted(buckets.items())]


def report(rows: list[Row]) -> DeliveryReport:
    return DeliveryReport(
        total=group("all", rows),
        by_carrier=_by(rows, lambda r: r.carrier),
        # Saleor upper-cases cities; the report shows one spelling per city.
        by_city=_by(rows, lambda r: (r.city or "unknown").strip().title()),
        by_month=_by(rows, lambda r: r.shipped_at.strftime("%Y-%m")),
    )


async def delivery_report(
    session: AsyncSession, installation_id: int, since: datetime, until: datetime
) -> DeliveryReport:
    """Shipments shipped in [since, until), cancelled ones left out."""
    result = await session.execute(
        select(
            Shipment.carrier,
            Shipment.destination_city,
            Shipment.shipped_at,
            Shipment.delivered_at,
            Shipment.had_exception,
        ).where(
            Shipment.installation_id == installation_id,
            Shipment.shipped_at >= since,
            Shipment.shipped_at < until,
            Shipment.cancelled_at.is_(None),
        )
    )
    return report([Row(*row) for row in result.all()])
