"""Helpers for import and lifecycle tests: a shop with history, its installation row."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.importer.models import ImportRun, ImportStatus
from plugin.importer.service import Importer, start_import
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.saleor.models import Installation
from plugin.settings import Settings
from tests.simulator import FakeShop

LINES = [("Mug", "MUG-1", "Kitchen", 2, 12.5), ("Tea", "TEA-1", "Food", 1, 8.0)]


def shop_with_history(customers: int = 3, guest_orders: int = 2) -> FakeShop:
    """Registered customers with an order each (one paid), an open cart, guest orders."""
    shop = FakeShop()
    for n in range(customers):
        shop.create_customer(
            f"buyer{n}@example.com", first_name=f"Ann{n}", last_name="Lee", phone="+12025550100"
        )
        user_id = shop.user_id(f"buyer{n}@example.com")
        order = shop.create_order(user_id=user_id, lines=LINES)[0]
        if n == 0:
            shop.pay_order(order.object_id)
    shop.create_checkout(email="cart@example.com", lines=LINES[:1])
    for n in range(guest_orders):
        shop.create_order(email=f"guest{n}@example.com", lines=LINES[1:])
    return shop


def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value())


async def shop_installation(db: Database, saleor: Any, settings: Settings) -> int:
    """The simulator's shop installed without going through /api/register (no import job
    is queued, so the test drives the importer itself)."""
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=saleor.api_url,
            saleor_domain=saleor.domain,
            app_id=saleor.app_id,
            token_encrypted=box(settings).encrypt(saleor.new_app_token()),
            jwks=saleor.jwks(),
            installed_at=utcnow(),
        )
        session.add(installation)
        await session.flush()
        return installation.id


async def queue_run(db: Database, installation_id: int) -> int:
    async with unit_of_work(db) as session:
        run = await start_import(session, installation_id, requested_by="test", enqueue=False)
        return run.id


async def run_import(
    db: Database,
    settings: Settings,
    run_id: int,
    *,
    max_seconds: float | None = None,
    **overrides: Any,
) -> ImportStatus:
    tuned = settings.model_copy(update={"import_requests_per_second": 1000.0, **overrides})
    async with httpx.AsyncClient(timeout=30) as http:
        importer = Importer(db, http, box(settings), tuned)
        return await importer.run(run_id, max_seconds=max_seconds)


async def get_run(db: Database, run_id: int) -> ImportRun:
    async with db.session() as session:
        run = await session.get(ImportRun, run_id)
        assert run is not None
        return run


async def count(db: Database, model: Any, installation_id: int) -> int:
    async with db.session() as session:
        value = await session.scalar(
            select(func.count()).select_from(model).where(model.installation_id == installation_id)
        )
    return int(value or 0)
