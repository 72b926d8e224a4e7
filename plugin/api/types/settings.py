"""How the shop scores its customers: score weights and hand-set RFM boundaries."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from plugin.scoring.weights import FACTORS, ScoreSettings
from plugin.segments.rfm_settings import RfmSettings


@strawberry.type(description="One factor of the customer score and its weight.")
class ScoreWeight:
    factor: str
    description: str
    weight: float = strawberry.field(description="Relative weight; the weights need not sum.")


@strawberry.type(description="What a first-touch source is worth to the score, 0 to 1.")
class SourceValue:
    source: str
    value: float


@strawberry.type(
    name="ScoreSettings", description="The score's weights (every factor) and source values."
)
class ScoreSettingsType:
    weights: list[ScoreWeight]
    sources: list[SourceValue] = strawberry.field(
        description="Sources not listed count as 0.5 (neutral)."
    )

    @classmethod
    def of(cls, settings: ScoreSettings) -> ScoreSettingsType:
        return cls(
            weights=[
                ScoreWeight(factor=name, description=text, weight=settings.weights.get(name, 0))
                for name, text in FACTORS.items()
            ],
            sources=[SourceValue(source=s, value=v) for s, v in sorted(settings.sources.items())],
        )


@strawberry.type(description="Four boundaries of one currency's monetary quintiles.")
class MonetaryBoundaries:
    currency: str
    boundaries: list[Decimal]


@strawberry.type(
    name="RfmSettings",
    description="Hand-set RFM boundaries, worst first; a part left null uses the quintiles.",
)
class RfmSettingsType:
    recency_days: list[float] | None = strawberry.field(
        description="Days since the last order, decreasing: each boundary a customer's last "
        "order is more recent than adds 1 to recency 1."
    )
    frequency: list[float] | None = strawberry.field(
        description="Orders, increasing: each boundary a customer has more orders than adds "
        "1 to frequency 1."
    )
    monetary: list[MonetaryBoundaries]

    @classmethod
    def of(cls, settings: RfmSettings) -> RfmSettingsType:
        return cls(
            recency_days=list(settings.recency_days) if settings.recency_days else None,
            frequency=list(settings.frequency) if settings.frequency else None,
            monetary=[
                MonetaryBoundaries(currency=c, boundaries=list(b))
                for c, b in sorted(settings.monetary.items())
            ],
        )
