"""Actors. They take ids, never objects, and are idempotent: a message may come twice."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from jobs.runtime import broker, context
from plugin.db.base import utcnow
from plugin.inbox import service as inbox

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
