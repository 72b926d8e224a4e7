"""The customer score: weighted, explainable, tunable, and the same on a fold as in bulk."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from plugin.commerce.models import Fulfillment
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.scoring.service import explain_score, refresh_scores, save_settings, score_profiles
from plugin.scoring.weights import FACTORS, ScoreSettingsError, parse_settings
from tests.conftest import new_installation


def _customer(installation_id: int, n: int, **extra: Any) -> Profile:
    now = utcnow()
    values: dict[str, Any] = {
        "installation_id": installation_id,
        "email": f"s{n}@example.com",
        "orders_count": 2,
        "paid_orders_count": 2,
        "currency": "USD",
        "total_spent": Decimal(100),
        "average_order_value": Decimal(50),
        "rfm_recency": 3,
        "rfm_frequency": 3,
        "rfm_monetary": 3,
        "first_order_at": now - timedelta(days=30),
        "last_order_at": now - timedelta(days=3),
    }
    values.update(extra)
    return Profile(**values)


async def _scores(db: Database, installation_id: int) -> dict[str | None, int | None]:
    async with db.session() as session:
        rows = await session.execute(
            select(Profile.email, Profile.score).where(Profile.installation_id == installation_id)
        )
        return {email: score for email, score in rows}


async def test_better_customers_score_higher_and_explanations_add_up(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        best = _customer(
            installation_id,
            1,
            rfm_recency=5,
            rfm_frequency=5,
            rfm_monetary=5,
            average_order_value=Decimal(200),
        )
        middle = _customer(installation_id, 2)
        trouble = _customer(
            installation_id,
            3,
            paid_orders_count=0,
            cancelled_orders_count=3,
            refunded_orders_count=1,
            rfm_recency=1,
            rfm_frequency=1,
            rfm_monetary=1,
        )
        nobody = _customer(installation_id, 4, orders_count=0, paid_orders_count=0)
        session.add_all([best, middle, trouble, nobody])
        await session.flush()
        session.add(
            Fulfillment(
                installation_id=installation_id,
                saleor_id="F1",
                order_saleor_id="O1",
                profile_id=middle.id,
                status="RETURNED",
                fulfilled_at=utcnow(),
                source_updated_at=utcnow(),
            )
        )
    async with unit_of_work(db) as session:
        assert await refresh_scores(session, installation_id) == 3
    scores = await _scores(db, installation_id)
    assert scores["s4@example.com"] is None  # no order, no score
    best_score, middle_score, trouble_score = (scores[f"s{n}@example.com"] for n in (1, 2, 3))
    assert best_score is not None
    assert middle_score is not None
    assert trouble_score is not None
    assert 0 <= trouble_score < middle_score < best_score <= 100
    assert best_score == 100

    async with db.session() as session:
        profile = await session.scalar(select(Profile).where(Profile.email == "s2@example.com"))
        assert profile is not None
        why = await explain_score(session, profile)
    assert why.score == middle_score
    assert abs(sum(f.points for f in why.factors) - middle_score) <= 1
    assert {f.name for f in why.factors} == set(FACTORS)
    delivery = next(f for f in why.factors if f.name == "delivery")
    assert delivery.value == 0  # her only parcel came back
    assert abs(sum(f.weight for f in why.factors) - 1) < 1e-9

    async with unit_of_work(db) as session:  # nothing changed: nothing written
        assert await refresh_scores(session, installation_id) == 0


async def test_a_fold_scores_like_the_bulk_refresh(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        session.add_all(
            _customer(
                installation_id, n, rfm_recency=1 + n % 5, average_order_value=Decimal(10 * n)
            )
            for n in range(1, 9)
        )
    async with unit_of_work(db) as session:
        loaded = list(
            await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
        )
        await score_profiles(session, installation_id, loaded)
    one_by_one = await _scores(db, installation_id)
    assert all(score is not None for score in one_by_one.values())
    async with unit_of_work(db) as session:
        assert await refresh_scores(session, installation_id) == 0
    assert await _scores(db, installation_id) == one_by_one


async def test_merchants_tune_weights_and_rate_sources(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        session.add(_customer(installation_id, 1, utm_source="partner"))
        session.add(_customer(installation_id, 2, utm_source="coupon-site"))
    only_source = dict.fromkeys(FACTORS, 0) | {"source": 100}
    async with unit_of_work(db) as session:
        await save_settings(
            session,
            installation_id,
            {"weights": only_source, "sources": {"partner": 1, "coupon-site": 0.2}},
        )
    async with unit_of_work(db) as session:
        await refresh_scores(session, installation_id)
    assert await _scores(db, installation_id) == {"s1@example.com": 100, "s2@example.com": 20}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"weights": {"loyalty": 3}}, "weights.loyalty: unknown factor"),
        ({"weights": {"recency": -1}}, "weights.recency: expected a number from 0"),
        ({"weights": {"recency": "high"}}, "weights.recency: expected a number"),
        ({"sources": {"google": 2}}, "sources.google: expected a number from 0 to 1"),
        ({"extra": 1}, "score settings are"),
        ({"weights": dict.fromkeys(FACTORS, 0)}, "at least one weight"),
    ],
)
def test_bad_settings_are_refused_with_the_key(raw: Any, words: str) -> None:
    with pytest.raises(ScoreSettingsError, match=words):
        parse_settings(raw)
