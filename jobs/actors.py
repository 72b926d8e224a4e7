"""Actors. They take ids, never objects, and are idempotent: a message may come twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import dramatiq
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.runtime import broker, context
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.locks import lock_installation, try_lock_refit
from plugin.importer.service import import_running
from plugin.inbox import service as inbox
from plugin.kit.after_commit import unit_of_work
from plugin.predictions.models import PredictionModel
from plugin.predictions.service import refit_installation
from plugin.profiles.models import Profile
from plugin.saleor.models import Installation, InstallationStatus
from plugin.segments.fill import fill_waiting
from plugin.segments.membership import refresh_installation
from plugin.segments.models import RULE_CHANGED, Segment

logger = logging.getLogger(__name__)
MAX_BATCHES_PER_JOB = 25


@dramatiq.actor(actor_name="inbox.fold", max_retries=0, time_limit=300_000, broker=broker)
async def fold_event(event_id: int, installation_id: int | None = None) -> None:
    """Fold a stored event: with its installation, together with everything else that
    waits there (one batch); without, just this one (a retry or a replay)."""
    ctx = context()
    max_attempts = ctx.settings.fold_max_attempts
    if installation_id is None:
        await inbox.fold(ctx.db, event_id, max_attempts=max_attempts)
        return
    # Jobs for one installation are coalesced when the sender is behind, so one job may
    # stand for many events: fold until nothing waits, then hand over to the next job.
    for _ in range(MAX_BATCHES_PER_JOB):
        folded = await inbox.fold_pending(ctx.db, installation_id, max_attempts=max_attempts)
        if folded < inbox.BATCH_SIZE:
            return
    fold_event.send(event_id=event_id, installation_id=installation_id)


@dramatiq.actor(actor_name="inbox.sweep", max_retries=0, time_limit=300_000, broker=broker)
async def sweep_inbox() -> None:
    ctx = context()
    async with ctx.db.session() as session:
        due = await inbox.due_for_folding(
            session,
            now=utcnow(),
            min_age=timedelta(seconds=ctx.settings.sweep_min_age_seconds),
        )
        await session.commit()
    batches: set[int] = set()
    for event in due:
        if event.failed:
            fold_event.send(event_id=event.id)
        elif event.installation_id not in batches:
            batches.add(event.installation_id)
            fold_event.send(event_id=event.id, installation_id=event.installation_id)


@dramatiq.actor(actor_name="segments.refresh", max_retries=0, time_limit=3_600_000, broker=broker)
async def refresh_segments() -> None:
    """Recompute every segment of every active shop, so time-driven rules ("no order for
    90 days") flip on the day they become true. Every worker ticks; a shop refreshed
    less than half an interval ago is skipped, and the installation lock serialises."""
    ctx = context()
    now = utcnow()
    fresh_after = now - timedelta(seconds=ctx.settings.segments_refresh_seconds / 2)
    async with ctx.db.session() as session:
        installation_ids = list(
            await session.scalars(
                select(Installation.id).where(Installation.status == InstallationStatus.ACTIVE)
            )
        )
    for installation_id in installation_ids:
        try:
            await refresh_shop(ctx, installation_id, now, fresh_after)
        except Exception:  # one shop's trouble never stops the others' refresh
            logger.exception("segment refresh failed for installation %s", installation_id)


async def refresh_shop(
    ctx: AppContext, installation_id: int, now: datetime, fresh_after: datetime
) -> None:
    """The shop's refresh unless it is fresh, then its waiting segments in chunks (their
    progress committed per chunk), however recently the shop was refreshed. Nothing while
    the shop's history is being imported: the import's end refreshes every segment."""
    async with unit_of_work(ctx.db) as session:
        if await import_running(session, installation_id, now):
            return
        await lock_installation(session, installation_id)
        latest = await session.scalar(
            select(func.max(Segment.refreshed_at)).where(Segment.installation_id == installation_id)
        )
        if latest is None or latest <= fresh_after:
            await refresh_installation(
                session, installation_id, now, dialect=ctx.db.dialect, skip_waiting=True
            )
        waiting = await has_waiting_segments(session, installation_id)
    if waiting:
        await fill_waiting(
            ctx.db, installation_id, now, chunk_size=ctx.settings.segments_fill_chunk
        )


async def has_waiting_segments(session: AsyncSession, installation_id: int) -> bool:
    """A segment saved on a large shop waits for this refresh (never computed, or its
    rule changed): it goes now, however recently the shop was refreshed."""
    waiting = await session.scalar(
        select(Segment.id)
        .where(
            Segment.installation_id == installation_id,
            or_(Segment.refreshed_at.is_(None), Segment.refreshed_at == RULE_CHANGED),
        )
        .limit(1)
    )
    return waiting is not None


@dramatiq.actor(actor_name="predictions.refit", max_retries=0, time_limit=3_600_000, broker=broker)
async def refit_predictions() -> None:
    """Refit the purchase model of every active shop whose model is older than
    `PREDICTIONS_REFIT_SECONDS` (or missing). A refit of a large shop takes a while, so it
    does not hold the fold lock: a customer folded meanwhile keeps the fold's numbers or
    the refit's, both made from valid figures, until the next fold or refit."""
    ctx = context()
    now = utcnow()
    stale_before = now - timedelta(seconds=ctx.settings.predictions_refit_seconds)
    async with ctx.db.session() as session:
        installation_ids = list(
            await session.scalars(
                select(Installation.id).where(Installation.status == InstallationStatus.ACTIVE)
            )
        )
    for installation_id in installation_ids:
        try:
            await _refit_one(ctx, installation_id, now, stale_before)
        except Exception:  # one shop's trouble never stops the others' refit
            logger.exception("prediction refit failed for installation %s", installation_id)


async def _refit_one(
    ctx: AppContext, installation_id: int, now: datetime, stale_before: datetime
) -> None:
    async with unit_of_work(ctx.db) as session:
        if not await try_lock_refit(session, installation_id):
            return  # another worker is on it
        fitted = await session.scalar(
            select(func.min(PredictionModel.fitted_at)).where(
                PredictionModel.installation_id == installation_id
            )
        )
        if fitted is not None and fitted > stale_before:
            return
        has_buyers = await session.scalar(
            select(Profile.id)
            .where(Profile.installation_id == installation_id, Profile.orders_count > 0)
            .limit(1)
        )
        if has_buyers is not None:
            await refit_installation(session, installation_id, now)


# Actors of other modules, declared wherever this module is imported (worker, web app).
from jobs import importer, lifecycle, messaging, tracking  # noqa: E402, F401
