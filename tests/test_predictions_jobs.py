"""Predictions in the running app: set on every fold, refitted by the scheduled job."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from jobs.actors import refit_predictions
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.predictions.models import PredictionModel
from plugin.profiles.models import Profile
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop

TEA = [("Tea", "TEA", "Food", 1, 9.0)]


async def test_a_second_order_gives_the_customer_a_next_order_date(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop(now=utcnow() - timedelta(days=40))
    events = []
    for _ in range(2):
        placed = shop.create_order(email="tea@example.com", lines=TEA)
        events += placed + shop.pay_order(placed[0].object_id)
        shop.tick(30 * 86400)
    for event in events:
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def predicted() -> Profile | None:
        async with db.session() as session:
            profile = await session.scalar(
                select(Profile).where(
                    Profile.installation_id == installation_id,
                    Profile.email == "tea@example.com",
                )
            )
        ready = (
            profile is not None
            and profile.paid_orders_count == 2
            and profile.predicted_next_order_at is not None
        )
        return profile if ready else None

    profile = await eventually(predicted)
    assert profile.paid_orders_count == 2
    assert profile.predicted_next_order_at is not None
    assert profile.predicted_next_order_at >= utcnow() - timedelta(minutes=1)
    assert profile.p_alive is not None
    assert 0 <= profile.p_alive <= 1


async def test_the_scheduled_job_fits_a_model_for_a_shop_without_one(
    app_server: RunningApp, db: Database, installation_id: int
) -> None:
    now = utcnow()
    async with unit_of_work(db) as session:
        for n in range(40):
            orders = 1 + n % 4
            session.add(
                Profile(
                    installation_id=installation_id,
                    email=f"buyer{n}@example.com",
                    currency="EUR",
                    orders_count=orders,
                    paid_orders_count=orders,
                    total_spent=Decimal(20 * orders),
                    average_order_value=Decimal(20),
                    first_order_at=now - timedelta(days=200),
                    last_order_at=now - timedelta(days=5 + n),
                )
            )
    refit_predictions.send()

    async def model() -> PredictionModel | None:
        async with db.session() as session:
            return await session.scalar(
                select(PredictionModel).where(PredictionModel.installation_id == installation_id)
            )

    stored = await eventually(model, timeout=60)
    assert stored.currency == "EUR"
    assert stored.status in ("fitted", "too_thin", "failed")
    assert stored.message or stored.status == "fitted"
