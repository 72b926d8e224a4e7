"""`lifecycle.retention`: purge uninstalled shops past their retention, prune raw webhook
bodies and message bodies. Ticked every `RETENTION_INTERVAL_SECONDS` by every worker;
each step is idempotent and the purge re-checks under the shop's lock."""

from __future__ import annotations

import logging

import dramatiq

from jobs.runtime import broker, context
from plugin.db.base import utcnow
from plugin.lifecycle.service import apply_retention

logger = logging.getLogger(__name__)

RETENTION_ACTOR = "lifecycle.retention"


@dramatiq.actor(actor_name=RETENTION_ACTOR, max_retries=0, time_limit=3_600_000, broker=broker)
async def retention() -> None:
    ctx = context()
    report = await apply_retention(ctx.db, ctx.settings, utcnow())
    if report.purged or any(report.pruned.values()):
        logger.info(
            "retention applied",
            extra={"purged": [p.installation_id for p in report.purged], "pruned": report.pruned},
        )
