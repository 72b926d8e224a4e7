"""RFM scores and cells: from the first order, by quantiles on a real base, on every fold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.rfm import CELL_NAMES, SMALL_BASE, cell_name, refresh_rfm, rfm_matrix
from plugin.segments.rfm_settings import RfmSettingsError, parse_rfm_settings, save_rfm_settings
from tests.conftest import RunningApp, eventually, new_installation
from tests.simulator import FakeShop


def test_every_cell_of_the_grid_has_a_name_and_every_name_a_cell() -> None:
    names = {cell_name(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert names == set(CELL_NAMES)
    assert len(CELL_NAMES) == 11
    assert cell_name(5, 5) == "Champions"
    assert cell_name(5, 1) == "New"
    assert cell_name(1, 1) == "Lost"
    assert cell_name(1, 5) == "Can't lose"


async def _buyer(
    session: Any, installation_id: int, n: int, days: float, orders: int, spent: str
) -> Profile:
    now = utcnow()
    profile = Profile(
        installation_id=installation_id,
        email=f"buyer{n}@example.com",
        currency="USD",
        orders_count=orders,
        paid_orders_count=orders,
        total_spent=Decimal(spent),
        first_order_at=now - timedelta(days=days + 30 * orders),
        last_order_at=now - timedelta(days=days),
    )
    session.add(profile)
    return profile


async def test_a_shop_with_one_customer_already_has_rfm(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        first = await _buyer(session, installation_id, 1, days=1, orders=1, spent="35")
        await session.flush()
        await refresh_rfm(session, installation_id, utcnow())
        await session.refresh(first)
    assert (first.rfm_recency, first.rfm_frequency, first.rfm_cell) == (5, 1, "New")


async def test_quantiles_rank_a_real_base(db: Database) -> None:
    installation_id = await new_installation(db)
    buyers = 100
    async with unit_of_work(db) as session:
        people = [
            # n = 0 is the most recent, most frequent and biggest spender
            await _buyer(
                session,
                installation_id,
                n,
                days=3 * n + 1,
                orders=10 - n // 10,
                spent=str(2000 - 15 * n),
            )
            for n in range(buyers)
        ]
        await session.flush()
        await refresh_rfm(session, installation_id, utcnow())
        for person in people:
            await session.refresh(person)
    assert buyers >= SMALL_BASE
    recency = [p.rfm_recency or 0 for p in people]
    assert recency == sorted(recency, reverse=True)  # fewer days never scores lower
    for score in range(1, 6):
        assert recency.count(score) == buyers // 5  # distinct values: exact quintiles
    assert people[0].rfm_cell == "Champions"
    assert people[-1].rfm_cell == "Lost"
    async with db.session() as session:
        matrix = await rfm_matrix(session, installation_id, "USD")
    assert len(matrix) == 25
    assert sum(c.customers for c in matrix) == buyers
    assert sum(c.revenue for c in matrix) == sum(Decimal(2000 - 15 * n) for n in range(buyers))
    champions = [c for c in matrix if c.name == "Champions"]
    assert sum(c.customers for c in champions) == sum(p.rfm_cell == "Champions" for p in people)


async def test_refresh_writes_only_what_changed(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        for n in range(5):
            await _buyer(session, installation_id, n, days=10 * n, orders=1 + n, spent="50")
        await session.flush()
        assert await refresh_rfm(session, installation_id, now) == 5
        assert await refresh_rfm(session, installation_id, now) == 0


async def test_a_fold_scores_the_customer_at_once(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop(now=utcnow() - timedelta(hours=2))
    placed = shop.create_order(email="rfm@example.com", lines=[("Tea", "TEA", "Food", 1, 9.0)])
    for event in placed + shop.pay_order(placed[0].object_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def scored() -> Profile | None:
        async with db.session() as session:
            profile = await session.scalar(
                select(Profile).where(
                    Profile.installation_id == installation_id,
                    Profile.email == "rfm@example.com",
                )
            )
        return profile if profile is not None and profile.rfm_cell else None

    profile = await eventually(scored)
    assert (profile.rfm_recency, profile.rfm_frequency, profile.rfm_cell) == (5, 1, "New")


async def test_merchant_set_boundaries_replace_the_quantiles(db: Database) -> None:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        await save_rfm_settings(
            session,
            installation_id,
            {"frequency": [1, 3, 6, 10], "monetary": {"usd": [10, 20, 30, 40]}},
        )
        buyer = await _buyer(session, installation_id, 1, days=1, orders=4, spent="35")
        await session.flush()
        await refresh_rfm(session, installation_id, utcnow())
        await session.refresh(buyer)
    # 4 orders beat 1 and 3 of the merchant's boundaries; 35 beats 10, 20 and 30
    assert (buyer.rfm_frequency, buyer.rfm_monetary) == (3, 4)
    assert buyer.rfm_recency == 5  # recency keeps its computed boundaries


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"frequency": [1, 2, 3]}, "frequency: expected a list of 4"),
        ({"frequency": [4, 3, 2, 1]}, "strictly increasing"),
        ({"recency_days": [30, 60, 120, 240]}, "strictly decreasing"),
        ({"monetary": {"dollars": [1, 2, 3, 4]}}, "not a currency code"),
        ({"monetary": {"USD": [1, "x", 3, 4]}}, r"monetary.USD\[1\]"),
        ({"weights": {}}, "RFM settings take only"),
    ],
)
def test_bad_boundaries_are_refused_with_the_part(raw: Any, words: str) -> None:
    with pytest.raises(RfmSettingsError, match=words):
        parse_rfm_settings(raw)
