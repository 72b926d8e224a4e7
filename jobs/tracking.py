"""Tracking actors: the polling tick (durable schedule in the database) and the apply
job of one stored carrier push. Both are idempotent; the tick also re-drives pushes
and staff alerts a lost job left behind."""

from __future__ import annotations

import logging
import time

import dramatiq

from jobs.runtime import broker, context
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.kit.after_commit import unit_of_work
from plugin.tracking import accounts, alerts, limits, polling
from plugin.tracking import webhooks as carrier_webhooks

logger = logging.getLogger(__name__)
# A tick polls until nothing is due or this share of the tick interval is spent.
TICK_BUDGET = 0.8


async def tick(ctx: AppContext) -> polling.RoundStats:
    """One scheduler tick: due polls, stalled parcels, unsent alerts, unapplied pushes.
    Each carrier account polls batch after batch until it has nothing due or the tick's
    budget is spent; the accounts' rate limits are shared with every other worker."""
    settings = ctx.settings
    secrets_box = accounts.box(settings.secret_key.get_secret_value())
    deadline = time.monotonic() + settings.tracking_tick_seconds * TICK_BUDGET
    rates = limits.store_for(settings.redis_url, ctx.db)
    try:
        async with ctx.carrier_client() as http, ctx.saleor_client() as saleor_http:
            stats = await polling.poll_round(
                ctx.db,
                http,
                secrets_box,
                batch=settings.tracking_poll_batch,
                stalled_days=settings.tracking_stalled_days,
                rates=rates,
                until=deadline,
            )
            async with ctx.db.session() as session:
                pending = await carrier_webhooks.pending_ids(session)
            for webhook_id in pending:
                await carrier_webhooks.apply(
                    ctx.db,
                    http,
                    secrets_box,
                    webhook_id,
                    stalled_days=settings.tracking_stalled_days,
                )
            now = utcnow()
            async with unit_of_work(ctx.db) as session:
                for shipment in await alerts.stalled_candidates(
                    session, now, settings.tracking_stalled_days
                ):
                    await alerts.raise_alerts(
                        session, shipment, now, settings.tracking_stalled_days
                    )
            await alerts.send_pending(ctx.db, saleor_http, ctx.box)
    finally:
        await limits.close_store(rates)
    return stats


@dramatiq.actor(actor_name="tracking.tick", max_retries=0, time_limit=600_000, broker=broker)
async def tracking_tick() -> None:
    stats = await tick(context())
    if stats.claimed:
        logger.info(
            "tracking tick: %s polled, %s changed, %s failed, %s rate-limited",
            stats.polled,
            stats.changed,
            stats.failed,
            stats.rate_limited,
        )


@dramatiq.actor(actor_name="tracking.webhook", max_retries=3, time_limit=120_000, broker=broker)
async def apply_webhook(webhook_id: int) -> None:
    """Apply one stored carrier push, then write any alert it raised to Saleor."""
    ctx = context()
    secrets_box = accounts.box(ctx.settings.secret_key.get_secret_value())
    async with ctx.carrier_client() as http:
        await carrier_webhooks.apply(
            ctx.db, http, secrets_box, webhook_id, stalled_days=ctx.settings.tracking_stalled_days
        )
    async with ctx.saleor_client() as saleor_http:
        await alerts.send_pending(ctx.db, saleor_http, ctx.box)
