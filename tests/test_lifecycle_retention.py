"""Retention: folded raw webhook bodies go after INBOX_RETENTION_DAYS (waiting and
retrying ones never), message bodies follow their own setting through a registered
pruner, and the job that applies it all is scheduled on every worker."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jobs import actors  # noqa: F401  (declares every actor, as a worker does)
from jobs.runtime import broker
from jobs.scheduler import PeriodicTicks
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.lifecycle import retention
from plugin.lifecycle.service import apply_retention
from plugin.settings import Settings
from tests.conftest import new_installation

# The rows and the retention run live a year ahead: the inbox sweeper of an app another
# test started (real time) then never takes the waiting or retrying rows and folds them.
AHEAD = timedelta(days=365)


def _later() -> datetime:
    return utcnow() + AHEAD


async def _event(
    db: Database,
    installation_id: int,
    name: str,
    age: timedelta,
    status: InboxStatus,
    next_attempt_in: timedelta | None = None,
) -> int:
    now = _later()
    async with unit_of_work(db) as session:
        row = InboxEvent(
            installation_id=installation_id,
            event_type="order_created",
            body_sha256=name.ljust(64, "0"),
            body='{"email": "someone@example.com"}',
            received_at=now - age,
            status=status,
            attempts=1,
            next_attempt_at=None if next_attempt_in is None else now + next_attempt_in,
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_folded_raw_bodies_are_deleted_after_the_retention(
    db: Database, settings: Settings
) -> None:
    # A year ahead, only the inbox is pruned: other tests' shops and messages stay.
    settings = settings.model_copy(
        update={"uninstall_retention_days": 10_000, "message_body_retention_days": 10_000}
    )
    shop = await new_installation(db)
    old, day = timedelta(days=31), timedelta(days=1)
    ids = {
        "old done": await _event(db, shop, "a", old, InboxStatus.DONE),
        "old abandoned": await _event(db, shop, "b", old, InboxStatus.FAILED),
        "old retrying": await _event(db, shop, "c", old, InboxStatus.FAILED, timedelta(hours=1)),
        "old waiting": await _event(db, shop, "d", old, InboxStatus.PENDING),
        "recent done": await _event(db, shop, "e", day, InboxStatus.DONE),
    }
    report = await apply_retention(db, settings, _later())
    assert report.pruned["inbox"] >= 2
    async with db.session() as session:
        kept = set(
            await session.scalars(select(InboxEvent.id).where(InboxEvent.installation_id == shop))
        )
    assert kept == {ids["old retrying"], ids["old waiting"], ids["recent done"]}

    shorter = settings.model_copy(update={"inbox_retention_days": 0.5})
    await apply_retention(db, shorter, _later())
    async with db.session() as session:
        left = set(
            await session.scalars(select(InboxEvent.id).where(InboxEvent.installation_id == shop))
        )
    assert left == {ids["old retrying"], ids["old waiting"]}


async def test_message_bodies_follow_their_own_retention_setting(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[datetime, timedelta]] = []

    async def prune_bodies(session: AsyncSession, now: datetime, keep: timedelta) -> int:
        calls.append((now, keep))
        return 3

    monkeypatch.setitem(
        retention._PRUNERS,
        "message_bodies",
        retention.PrunerSpec(prune_bodies, "message_body_retention_days"),
    )
    now = utcnow()
    report = await apply_retention(
        db, settings.model_copy(update={"message_body_retention_days": 7.0}), now
    )
    assert calls == [(now, timedelta(days=7))]
    assert report.pruned["message_bodies"] == 3


def test_defaults_and_schedule() -> None:
    defaults = Settings()
    assert defaults.uninstall_retention_days == 30
    assert defaults.inbox_retention_days == 30
    assert defaults.message_body_retention_days == 30
    ticks = next(m for m in broker.middleware if isinstance(m, PeriodicTicks))
    assert ticks.schedule["lifecycle.retention"] == defaults.retention_interval_seconds
    assert broker.get_actor("lifecycle.retention") is not None
    assert broker.get_actor("import.run") is not None
