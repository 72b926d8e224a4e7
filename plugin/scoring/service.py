"""Scoring customers: the touched ones on every fold, the whole shop on the scheduled
refresh (recency moves with time), and the explanation the card shows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.saleor.models import Installation
from plugin.scoring.formula import factor_expressions, score_expression
from plugin.scoring.weights import FACTORS, ScoreSettings, parse_settings, settings_of
from plugin.segments.fields import FIELDS
from plugin.segments.rules import TopPercent
from plugin.segments.thresholds import thresholds

MEDIAN = TopPercent(FIELDS["average_order_value"], 50)


@dataclass(frozen=True)
class Factor:
    name: str
    meaning: str
    value: float  # 0–1
    weight: float  # share of the score, 0–1
    points: float  # value × weight × 100: what it adds to the score


@dataclass(frozen=True)
class ScoreExplanation:
    score: int | None
    factors: tuple[Factor, ...]


async def shop_settings(session: AsyncSession, installation_id: int) -> ScoreSettings:
    preferences = await session.scalar(
        select(Installation.preferences).where(Installation.id == installation_id)
    )
    return settings_of(preferences)


async def shop_inputs(
    session: AsyncSession, installation_id: int, *, fresh: bool = False
) -> tuple[ScoreSettings, dict[str, Decimal]]:
    settings = await shop_settings(session, installation_id)
    medians = dict(await thresholds(session, installation_id, MEDIAN, fresh=fresh))
    return settings, medians


async def score_profiles(
    session: AsyncSession, installation_id: int, profiles: list[Profile]
) -> None:
    """After a fold: the score of each touched customer, from their just-written figures."""
    if not profiles:
        return
    await session.flush()
    settings, medians = await shop_inputs(session, installation_id)
    rows = await session.execute(
        select(Profile.id, score_expression(settings, medians)).where(
            Profile.id.in_([p.id for p in profiles])
        )
    )
    scores: dict[int, int | None] = {pid: score for pid, score in rows}
    for profile in profiles:
        new = scores.get(profile.id)
        if profile.score != new:
            profile.score = new


async def refresh_scores(
    session: AsyncSession, installation_id: int, *, medians: dict[str, Decimal] | None = None
) -> int:
    """Rescore every customer of the shop in one UPDATE; only changed rows are written.
    `medians`: the average checks' medians when the caller has just computed them."""
    if medians is None:
        settings, medians = await shop_inputs(session, installation_id, fresh=True)
    else:
        settings = await shop_settings(session, installation_id)
    expression = score_expression(settings, medians)
    result = await session.execute(
        update(Profile)
        .where(
            Profile.installation_id == installation_id,
            Profile.score.is_distinct_from(expression),
        )
        .values(score=expression)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def explain_score(session: AsyncSession, profile: Profile) -> ScoreExplanation:
    """Each factor's value and the points it adds: "why is her score 72?"."""
    settings, medians = await shop_inputs(session, profile.installation_id)
    factors = factor_expressions(settings, medians)
    names = list(FACTORS)
    row = (
        await session.execute(
            select(score_expression(settings, medians), *(factors[n] for n in names)).where(
                Profile.id == profile.id
            )
        )
    ).one()
    total = settings.total_weight
    parts = []
    for name, raw in zip(names, row[1:], strict=True):
        weight = settings.weights.get(name, 0) / total
        value = float(raw if raw is not None else 0)
        parts.append(
            Factor(name, FACTORS[name], round(value, 3), weight, round(value * weight * 100, 1))
        )
    return ScoreExplanation(row[0], tuple(parts))


async def save_settings(session: AsyncSession, installation_id: int, raw: Any) -> ScoreSettings:
    """Validate and store the merchant's weights (ScoreSettingsError names the bad key);
    the next scheduled refresh rescores the shop with them."""
    parsed = parse_settings(raw)
    installation = await session.get(Installation, installation_id)
    if installation is None:
        raise LookupError(installation_id)
    installation.preferences = {
        **(installation.preferences or {}),
        "score": parsed.as_preferences(),
    }
    return parsed
