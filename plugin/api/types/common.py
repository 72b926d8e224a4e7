"""Small value types shared by several objects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

import strawberry


@strawberry.type(description="An amount in one currency (never summed across currencies).")
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: Decimal | None, currency: str | None) -> Money | None:
        if amount is None or currency is None:
            return None
        return cls(amount=amount, currency=currency)


class HasSource(Protocol):
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    referrer: str | None


@strawberry.type(description="Where a buyer came from: UTM parameters and referrer.")
class Source:
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    referrer: str | None
    at: datetime | None = None

    @classmethod
    def of(cls, row: HasSource, at: datetime | None = None) -> Source | None:
        if not any((row.utm_source, row.utm_medium, row.utm_campaign, row.referrer)):
            return None
        return cls(
            utm_source=row.utm_source,
            utm_medium=row.utm_medium,
            utm_campaign=row.utm_campaign,
            utm_term=row.utm_term,
            utm_content=row.utm_content,
            referrer=row.referrer,
            at=at,
        )
