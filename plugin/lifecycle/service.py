"""The retention job's work: purge shops past their uninstall retention, then prune raw
payloads and message bodies. Each step commits on its own, so a failure in one leaves
the others done."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.lifecycle.purge import Purged, due_for_purge, purge_installation
from plugin.lifecycle.retention import DELETE_BATCH, pruners
from plugin.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    purged: list[Purged] = field(default_factory=list)
    pruned: dict[str, int] = field(default_factory=dict)


async def apply_retention(db: Database, settings: Settings, now: datetime) -> RetentionReport:
    report = RetentionReport()
    keep = timedelta(days=settings.uninstall_retention_days)
    async with db.session() as session:
        due = await due_for_purge(session, now, keep)
    for installation_id in due:
        try:
            async with unit_of_work(db) as session:
                purged = await purge_installation(session, installation_id, now, keep)
            if purged is not None:
                report.purged.append(purged)
        except Exception:  # one shop's trouble never stops the others
            logger.exception("purge failed for installation %s", installation_id)
    for name, spec in sorted(pruners().items()):
        retention = timedelta(days=float(getattr(settings, spec.setting)))
        total = 0
        try:
            while True:
                async with unit_of_work(db) as session:
                    count = await spec.pruner(session, now, retention)
                total += count
                if count < DELETE_BATCH:
                    break
        except Exception:
            logger.exception("retention pruner %s failed", name)
        report.pruned[name] = total
    return report
