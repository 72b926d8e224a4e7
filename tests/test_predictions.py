"""Predictions: the fit recovers known parameters of a simulated shop and forecasts its
holdout; the service writes sane values, only when they change, per installation; the
fold's single-profile path agrees with the bulk refit; thin shops get an explained
fallback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import hyp2f1
from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.predictions import bgnbd, gamma_gamma
from plugin.predictions.bgnbd import BgNbdParams
from plugin.predictions.explain import explain, explanation
from plugin.predictions.gamma_gamma import GammaGammaParams
from plugin.predictions.models import PredictionModel
from plugin.predictions.service import (
    MIN_REPEAT_BUYERS,
    predict_profiles,
    refit_installation,
    write_predictions,
)
from plugin.profiles.models import Profile
from tests.conftest import new_installation

Array = NDArray[np.float64]

# Days as the time unit: one order every ~60 days while active, ~24 % dropout per order.
TRUE_PURCHASES = BgNbdParams(r=0.5, alpha=30.0, a=0.8, b=2.5)
TRUE_SPEND = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)  # mean order value 30
HOLDOUT_DAYS = 180.0


@dataclass(frozen=True)
class Population:
    x: Array  # repeat purchases in the calibration period
    t_x: Array
    T: Array
    holdout: Array  # purchases in the following HOLDOUT_DAYS
    mean_value: Array  # average order value over the calibration orders (x + 1)


def simulate(customers: int, seed: int) -> Population:
    """BG/NBD and Gamma-Gamma as generative stories, customer by customer."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(TRUE_PURCHASES.r, 1 / TRUE_PURCHASES.alpha, customers)
    dropouts = rng.beta(TRUE_PURCHASES.a, TRUE_PURCHASES.b, customers)
    ages = rng.uniform(180, 540, customers)
    spend_rates = rng.gamma(TRUE_SPEND.q, 1 / TRUE_SPEND.gamma, customers)
    x, t_x, holdout, mean_value = (np.zeros(customers) for _ in range(4))
    for i in range(customers):
        t, times = 0.0, []
        while True:  # the first order is at 0; dropout may follow each repeat order
            t += rng.exponential(1 / rates[i])
            if t > ages[i] + HOLDOUT_DAYS:
                break
            times.append(t)
            if rng.random() < dropouts[i]:
                break
        calibration = [s for s in times if s <= ages[i]]
        x[i], t_x[i] = len(calibration), (calibration[-1] if calibration else 0.0)
        holdout[i] = len(times) - len(calibration)
        mean_value[i] = rng.gamma(TRUE_SPEND.p, 1 / spend_rates[i], len(calibration) + 1).mean()
    return Population(x, t_x, ages, holdout, mean_value)


@pytest.fixture(scope="module")
def population() -> Population:
    return simulate(5000, seed=3)


def _relative_errors(fitted: Any, true: Any) -> dict[str, float]:
    return {k: abs(getattr(fitted, k) / v - 1) for k, v in vars(true).items()}


class TestFit:
    def test_bgnbd_recovers_the_true_parameters(self, population: Population) -> None:
        fitted = bgnbd.fit(population.x, population.t_x, population.T)
        errors = _relative_errors(fitted, TRUE_PURCHASES)
        assert max(errors.values()) < 0.15, (fitted, errors)

    def test_holdout_purchases_agree_with_the_forecast(self, population: Population) -> None:
        p = population
        fitted = bgnbd.fit(p.x, p.t_x, p.T)
        forecast = bgnbd.expected_purchases(fitted, HOLDOUT_DAYS, p.x, p.t_x, p.T)
        assert forecast.sum() == pytest.approx(p.holdout.sum(), rel=0.10)
        # And per calibration frequency, where the model must tell customers apart.
        for low, high in ((0, 0), (1, 1), (2, 3), (4, 1000)):
            group = (p.x >= low) & (p.x <= high)
            assert forecast[group].sum() == pytest.approx(p.holdout[group].sum(), rel=0.2)

    def test_gamma_gamma_recovers_the_true_parameters(self, population: Population) -> None:
        fitted = gamma_gamma.fit(population.x + 1, population.mean_value)
        errors = _relative_errors(fitted, TRUE_SPEND)
        assert max(errors.values()) < 0.25, (fitted, errors)
        assert fitted.mean_order_value == pytest.approx(TRUE_SPEND.mean_order_value, rel=0.03)

    def test_expected_purchases_match_the_textbook_formula(self) -> None:
        r, alpha, a, b = 0.5, 30.0, 0.8, 2.5
        x, t_x, T, t = np.array([0.0, 1, 5, 20]), np.array([0.0, 40, 200, 300]), 320.0, 180.0
        z = t / (alpha + T + t)
        odds = np.where(
            x > 0, a / np.maximum(b + x - 1, 1e-9) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0
        )
        textbook = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + T) / (alpha + T + t)) ** (r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1, z)
            )
            / (1 + odds)
        )
        ours = bgnbd.expected_purchases(BgNbdParams(r, alpha, a, b), t, x, t_x, T)
        np.testing.assert_allclose(ours, textbook, rtol=1e-9)
        # Many orders do not overflow.
        heavy = bgnbd.expected_purchases(BgNbdParams(r, alpha, a, b), 365, [400.0], [399], [400])
        assert np.isfinite(heavy).all()
        assert heavy[0] > 100

    def test_silence_lowers_p_alive_and_the_next_order_is_never_past(self) -> None:
        params = TRUE_PURCHASES
        alive = bgnbd.p_alive(params, [5.0, 5.0, 5.0], [100.0, 100.0, 100.0], [110.0, 200.0, 400.0])
        assert 1 >= alive[0] > alive[1] > alive[2] > 0
        assert bgnbd.p_alive(params, [0.0], [0.0], [400.0])[0] == 1.0  # BG/NBD's known quirk
        wait = bgnbd.median_days_to_next_purchase(params, np.array([0.0, 5, 50]), np.full(3, 300.0))
        assert (wait > 0).all()
        assert wait[2] < wait[1] < wait[0]


def _add_profiles(
    session: Any,
    installation_id: int,
    population: Population,
    now: datetime,
    currency: str = "USD",
) -> list[Profile]:
    profiles = []
    for i in range(len(population.x)):
        orders = int(population.x[i]) + 1
        first = now - timedelta(days=float(population.T[i]))
        check = Decimal(f"{population.mean_value[i]:.2f}")
        profiles.append(
            Profile(
                installation_id=installation_id,
                email=f"p{i}@example.com",
                currency=currency,
                orders_count=orders,
                paid_orders_count=orders,
                total_spent=check * orders,
                average_order_value=check,
                first_order_at=first,
                last_order_at=first + timedelta(days=float(population.t_x[i])),
            )
        )
    profiles.append(Profile(installation_id=installation_id, email="never@example.com"))
    session.add_all(profiles)
    return profiles


_COLUMNS = (
    Profile.id,
    Profile.orders_count,
    Profile.p_alive,
    Profile.predicted_orders_12m,
    Profile.predicted_value_12m,
    Profile.predicted_next_order_at,
    Profile.updated_at,
    Profile.first_order_at,
    Profile.last_order_at,
)


async def _rows(db: Database, installation_id: int) -> list[Any]:
    async with db.session() as session:
        return list(
            (
                await session.execute(
                    select(*_COLUMNS)
                    .where(Profile.installation_id == installation_id)
                    .order_by(Profile.id)
                )
            ).all()
        )


def _assert_sane(rows: list[Any], now: datetime) -> None:
    for _, orders, p_alive, orders_12m, value, next_at, _, first, last in rows:
        if orders == 0:
            assert (p_alive, orders_12m, value, next_at) == (None, None, None, None)
        elif orders == 1 or last - first < timedelta(days=1):  # one purchase
            assert p_alive is None
            assert next_at is None
        else:
            assert p_alive is not None
            assert 0 <= p_alive <= 1
            assert next_at is not None
            assert next_at >= now
            assert orders_12m is not None
            assert orders_12m >= 0
            assert value is not None
            assert value >= 0


class TestService:
    async def test_refit_writes_sane_predictions_once_and_per_installation(
        self, db: Database
    ) -> None:
        shop, other = await new_installation(db), await new_installation(db)
        now = utcnow()
        async with unit_of_work(db) as session:
            _add_profiles(session, shop, simulate(300, seed=11), now)
            session.add(Profile(installation_id=other, currency="USD", orders_count=3, p_alive=0.5))
        async with unit_of_work(db) as session:
            models = await refit_installation(session, shop, now)
        assert [(m.currency, m.status) for m in models] == [("USD", "fitted")]
        assert models[0].customers == 300
        assert set(models[0].parameters) >= {"r", "alpha", "a", "b", "gamma_gamma"}
        assert models[0].message.startswith("Fitted on 300 customers")
        first = await _rows(db, shop)
        _assert_sane(first, now)
        assert sum(row.p_alive is not None for row in first) >= MIN_REPEAT_BUYERS

        async with unit_of_work(db) as session:
            await refit_installation(session, shop, now)
            assert await write_predictions(session, shop, "USD", now) == 0
        assert await _rows(db, shop) == first  # nothing rewritten, not even updated_at
        assert [row.p_alive for row in await _rows(db, other)] == [0.5]

    async def test_a_thin_shop_gets_an_explained_fallback(self, db: Database) -> None:
        shop = await new_installation(db)
        now = utcnow()
        async with unit_of_work(db) as session:
            _add_profiles(session, shop, simulate(25, seed=5), now)
        async with unit_of_work(db) as session:
            [model] = await refit_installation(session, shop, now)
        assert model.status == "too_thin"
        assert model.parameters == {"method": "fallback"}
        assert f"needs at least {MIN_REPEAT_BUYERS}" in model.message
        rows = await _rows(db, shop)
        _assert_sane(rows, now)
        assert any(row.p_alive is not None for row in rows)
        async with db.session() as session:
            regular = await session.scalar(
                select(Profile)
                .where(Profile.installation_id == shop, Profile.orders_count >= 3)
                .limit(1)
            )
            assert regular is not None
            text = explain(regular, model, now)
        assert "fallback" in text
        assert "likely still active" in text
        assert f"Ordered {regular.orders_count} times" in text

    async def test_the_fold_path_equals_the_bulk_refit(self, db: Database) -> None:
        for size in (300, 20):  # fitted, then the fallback
            shop = await new_installation(db)
            now = utcnow()
            async with unit_of_work(db) as session:
                _add_profiles(session, shop, simulate(size, seed=size), now)
            async with unit_of_work(db) as session:
                await refit_installation(session, shop, now)
            async with db.session() as session:
                profiles = list(
                    await session.scalars(select(Profile).where(Profile.installation_id == shop))
                )
                stored = [_predictions(p) for p in profiles]
                for profile in profiles:
                    profile.p_alive = profile.predicted_orders_12m = None
                    profile.predicted_value_12m = profile.predicted_next_order_at = None
                sample = profiles[::7] + profiles[-1:]  # the last one never ordered
                for profile in sample:  # one at a time, as a fold would
                    written = stored[profiles.index(profile)] != (None,) * 4
                    assert await predict_profiles(session, shop, [profile], now) == written
                assert [_predictions(p) for p in sample] == [
                    stored[profiles.index(p)] for p in sample
                ]
                await predict_profiles(session, shop, profiles, now)
                assert [_predictions(p) for p in profiles] == stored

    async def test_a_customer_who_lost_their_orders_loses_the_prediction(
        self, db: Database
    ) -> None:
        shop = await new_installation(db)
        now = utcnow()
        async with unit_of_work(db) as session:
            profiles = _add_profiles(session, shop, simulate(50, seed=2), now)
            await session.flush()
            await refit_installation(session, shop, now)
            gone = next(p for p in profiles if p.orders_count >= 2)
            assert gone.p_alive is not None  # the loaded object got the new values too
            gone.orders_count, gone.currency = 0, None
            gone.first_order_at = gone.last_order_at = None
            await session.flush()
            await refit_installation(session, shop, now)
            await session.refresh(gone)
        assert _predictions(gone) == (None, None, None, None)


def _predictions(profile: Profile) -> tuple[Any, ...]:
    return (
        profile.p_alive,
        profile.predicted_orders_12m,
        profile.predicted_value_12m,
        profile.predicted_next_order_at,
    )


class TestExplanation:
    def _profile(self, orders: int, first_days: float, last_days: float, now: datetime) -> Profile:
        return Profile(
            installation_id=1,
            currency="EUR",
            orders_count=orders,
            paid_orders_count=orders,
            total_spent=Decimal(40 * orders),
            average_order_value=Decimal(40),
            first_order_at=now - timedelta(days=first_days),
            last_order_at=now - timedelta(days=last_days),
        )

    def test_a_fitted_model_speaks_of_rhythm_and_chance(self) -> None:
        now = utcnow()
        model = PredictionModel(
            currency="EUR",
            status="fitted",
            customers=1234,
            parameters={
                "method": "bgnbd",
                "r": 0.5,
                "alpha": 30.0,
                "a": 0.8,
                "b": 2.5,
                "gamma_gamma": {"p": 6.0, "q": 4.0, "gamma": 15.0},
            },
        )
        result = explanation(self._profile(4, 125, 35, now), model, now)
        assert result.method == "model"
        assert (result.orders, result.days_since_last, result.interval_days) == (4, 35, 30.0)
        assert result.p_alive is not None
        assert 0 < result.p_alive < 1
        assert result.days_to_next is not None
        assert result.days_to_next > 0
        assert result.text.startswith("Ordered 4 times, about every 30 days, last 35 days ago.")
        assert f"order again in about {result.days_to_next} days" in result.text
        assert f"{round(result.p_alive * 100)} % likely still active" in result.text
        assert "1,234 customers" in result.text

        once = explanation(self._profile(1, 35, 35, now), model, now)
        assert once.p_alive is None
        assert once.orders_12m is not None
        assert "too early to tell" in once.text

    def test_no_model_yet_and_no_orders(self) -> None:
        now = utcnow()
        text = explain(self._profile(3, 100, 10, now), None, now)
        assert "fallback: The shop's model has not been fitted yet;" in text
        assert explain(Profile(orders_count=0), None, now) == "No orders yet: no prediction."

    def test_orders_on_one_day_are_one_purchase(self) -> None:
        """Two orders one second apart (a forgotten item) are no rhythm: no "next order
        tomorrow", whether the shop's model is fitted or not (issue 15.7)."""
        now = utcnow()
        twice = Profile(
            installation_id=1,
            currency="EUR",
            orders_count=2,
            paid_orders_count=2,
            total_spent=Decimal(80),
            average_order_value=Decimal(40),
            first_order_at=now - timedelta(days=3, seconds=1),
            last_order_at=now - timedelta(days=3),
        )
        fallback = explanation(twice, None, now)
        assert (fallback.p_alive, fallback.days_to_next, fallback.interval_days) == (
            None,
            None,
            None,
        )
        assert fallback.text.startswith("Ordered 2 times on one day, 3 days ago;")
        model = PredictionModel(
            currency="EUR",
            status="fitted",
            customers=1234,
            parameters={"method": "bgnbd", "r": 0.5, "alpha": 30.0, "a": 0.8, "b": 2.5},
        )
        fitted = explanation(twice, model, now)
        assert (fitted.p_alive, fitted.days_to_next) == (None, None)
        assert "too early to tell" in fitted.text
        # Two days with orders are two purchases again.
        apart = explanation(self._profile(2, 33, 3, now), None, now)
        assert apart.interval_days == 30.0
        assert apart.days_to_next is not None
