"""The scheduler tick's work, per shop: presets, timeline intake, time triggers, and the
due runs and messages to hand to workers. Everything it decides lives in the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.intake import TIME_TRIGGER_EVERY, read_timeline, time_triggers
from plugin.messaging.models import (
    FlowRun,
    Message,
    MessageStatus,
    MessagingSettings,
    RunStatus,
)
from plugin.messaging.presets import ensure_presets
from plugin.messaging.runs import due_runs
from plugin.messaging.sending import MESSAGE_CLAIM, STALE_SENDING, give_up_stale
from plugin.saleor.models import Installation, InstallationStatus
from plugin.timeline.models import TimelineEntry

logger = logging.getLogger(__name__)
RESEND_GRACE = timedelta(seconds=10)  # a fresh message's own job usually comes first


@dataclass
class TickResult:
    runs_started: int = 0
    due_runs: list[int] = field(default_factory=list)
    due_messages: list[int] = field(default_factory=list)


INTAKE_LOCK_NAMESPACE = 0x6D736700  # "msg": apart from the fold lock, folds never wait


async def _try_lock_intake(session: AsyncSession, installation_id: int) -> bool:
    """PostgreSQL: a transaction-scoped try-lock. SQLite has one writer already."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
        {"ns": INTAKE_LOCK_NAMESPACE, "key": installation_id},
    )
    return bool(got)


async def _shops_with_work(session: AsyncSession, now: datetime) -> list[int]:
    """Active shops whose intake has something to do: presets never made, timeline
    entries past the cursor, or time triggers due. Read-only, one statement: a tick
    takes no write lock (SQLite has one) for shops where nothing happened."""
    newer = (
        select(TimelineEntry.id)
        .where(
            TimelineEntry.installation_id == Installation.id,
            TimelineEntry.id > func.coalesce(MessagingSettings.timeline_cursor, 0),
        )
        .exists()
    )
    time_due = MessagingSettings.time_triggers_at.is_(None) | (
        MessagingSettings.time_triggers_at <= now - TIME_TRIGGER_EVERY
    )
    rows = await session.scalars(
        select(Installation.id)
        .outerjoin(MessagingSettings, MessagingSettings.installation_id == Installation.id)
        .where(Installation.status == InstallationStatus.ACTIVE)
        .where(MessagingSettings.presets_created_at.is_(None) | newer | time_due)
    )
    return list(rows)


async def _handouts_due(session: AsyncSession, now: datetime) -> bool:
    """Whether any run or message is due, or stuck sending (read-only)."""
    run = select(FlowRun.id).where(
        FlowRun.status == RunStatus.ACTIVE,
        FlowRun.next_at <= now,
        FlowRun.claimed_until.is_(None) | (FlowRun.claimed_until < now),
    )
    message = select(Message.id).where(
        Message.status == MessageStatus.QUEUED, Message.next_attempt_at <= now - RESEND_GRACE
    )
    stale = select(Message.id).where(
        Message.status == MessageStatus.SENDING, Message.sent_at < now - STALE_SENDING
    )
    found = await session.scalar(
        select(literal(1)).where(run.exists() | message.exists() | stale.exists())
    )
    return found is not None


async def tick(db: Database, now: datetime, lag: timedelta) -> TickResult:
    result = TickResult()
    async with db.session() as session:
        busy = await _shops_with_work(session, now)
        handouts = await _handouts_due(session, now)
    for installation_id in busy:
        try:
            async with unit_of_work(db) as session:
                # one intake per shop at a time (the cursor is read and moved in one go);
                # another worker's tick on it already: skip, never wait
                if not await _try_lock_intake(session, installation_id):
                    continue
                await ensure_presets(session, installation_id, now)
                result.runs_started += await read_timeline(session, installation_id, now, lag)
                result.runs_started += await time_triggers(session, installation_id, now)
        except Exception:  # one shop's trouble never stops the others
            logger.exception("messaging intake failed for installation %s", installation_id)
    if handouts or result.runs_started:
        async with unit_of_work(db) as session:
            result.due_runs = await due_runs(session, now)
            result.due_messages = await _due_messages(session, now)
            await give_up_stale(session, now)
    return result


async def _due_messages(session: AsyncSession, now: datetime) -> list[int]:
    """Queued messages whose time came and whose job may be lost (Redis restarted, a
    retry's back-off ended); each is handed out once per claim period."""
    query = (
        select(Message)
        .where(
            Message.status == MessageStatus.QUEUED,
            Message.next_attempt_at <= now - RESEND_GRACE,
        )
        .order_by(Message.next_attempt_at)
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    messages = list(await session.scalars(query))
    ids = [m.id for m in messages]
    if ids:
        await session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(next_attempt_at=now - RESEND_GRACE + MESSAGE_CLAIM)
        )
    return ids
