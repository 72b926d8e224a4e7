"""`import.run`: backfill a shop's history from Saleor, a bounded slice per message.

A slice runs for at most `SLICE_SECONDS`, then the run re-queues itself: a worker restart
(deploy) costs at most one page, and other jobs get their turn on a busy worker. Its
priority is below the folds': a worker with both waiting folds the webhooks first.
"""

from __future__ import annotations

import dramatiq

from jobs.runtime import broker, context
from plugin.importer.service import IMPORT_ACTOR, Importer

SLICE_SECONDS = 120.0
# Dramatiq runs lower numbers first; actors default to 0 (the folds).
PRIORITY = 100


@dramatiq.actor(
    actor_name=IMPORT_ACTOR,
    max_retries=0,
    time_limit=3_600_000,
    priority=PRIORITY,
    broker=broker,
)
async def run_import(run_id: int) -> None:
    ctx = context()
    # A worker process's context has no HTTP client of its own (only the web app opens one).
    # The egress policy's client: the shop's name may resolve elsewhere since it installed.
    async with ctx.saleor_client(3) as http:
        await Importer(ctx.db, http, ctx.box, ctx.settings).run(run_id, max_seconds=SLICE_SECONDS)
