"""Messaging actors: the scheduler tick, one flow run's due steps, batches of sends.

They take ids and are idempotent: the state lives in the database, so a job delivered
twice, or lost with a Redis restart and handed out again by the tick, does no harm.
"""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from jobs.runtime import broker, context
from plugin.db.base import utcnow
from plugin.kit.after_commit import unit_of_work
from plugin.messaging import retention, runs, scheduler, sending

__all__ = ["retention"]  # imported for its pruner, registered with the lifecycle job


@dramatiq.actor(actor_name="messaging.tick", max_retries=0, time_limit=300_000, broker=broker)
async def messaging_tick() -> None:
    """Read the timeline into flow runs, then hand due runs and messages to workers."""
    ctx = context()
    lag = timedelta(seconds=ctx.settings.messaging_timeline_lag_seconds)
    result = await scheduler.tick(ctx.db, utcnow(), lag)
    for run_id in result.due_runs:
        run_step.send(run_id=run_id)
    for start in range(0, len(result.due_messages), sending.BATCH):
        send_batch.send(message_ids=result.due_messages[start : start + sending.BATCH])


@dramatiq.actor(actor_name="messaging.step", max_retries=3, time_limit=120_000, broker=broker)
async def run_step(run_id: int) -> None:
    ctx = context()
    async with unit_of_work(ctx.db) as session:
        await runs.visit(session, run_id, utcnow())


@dramatiq.actor(actor_name="messaging.send", max_retries=0, time_limit=120_000, broker=broker)
async def send_message(message_id: int, handed_out: bool = False) -> None:
    """This message and what else of its shop is due, as one batch. Retries are the
    message's own (stored back-off), never Dramatiq's."""
    await sending.deliver_with_due(context(), message_id, handed_out=handed_out)


@dramatiq.actor(actor_name="messaging.send_batch", max_retries=0, time_limit=300_000, broker=broker)
async def send_batch(message_ids: list[int], handed_out: bool = True) -> None:
    """Messages the tick handed out (due after a wait, a back-off or a lost job)."""
    await sending.deliver_many(context(), message_ids, handed_out=handed_out)
