"""Retention: raw webhook bodies and message bodies are kept only as long as needed.

A raw body is what Saleor sent, PII and all; once folded its content lives on in the CRM
model, so it is kept `INBOX_RETENTION_DAYS` (for replays and audits) and then deleted.
Events still waiting or due for a retry are never deleted. Deleting a body also drops
its dedup key; Saleor stops redelivering after minutes, and a fold is idempotent anyway.

Other packages keep bodies of their own (the messages sent): they register a pruner,
which receives the configured retention, so one setting and one job govern them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.inbox.models import InboxEvent, InboxStatus

DELETE_BATCH = 5000

# `pruner(session, now, retention)` deletes or blanks what is older; returns how many.
Pruner = Callable[[AsyncSession, datetime, timedelta], Awaitable[int]]


@dataclass(frozen=True)
class PrunerSpec:
    pruner: Pruner
    setting: str  # the Settings attribute (in days) that sets its retention


_PRUNERS: dict[str, PrunerSpec] = {}


def register_pruner(name: str, pruner: Pruner, *, setting: str) -> None:
    """E.g. `register_pruner("message_bodies", prune, setting="message_body_retention_days")`."""
    _PRUNERS[name] = PrunerSpec(pruner, setting)


def pruners() -> dict[str, PrunerSpec]:
    return dict(_PRUNERS)


async def prune_inbox(session: AsyncSession, now: datetime, retention: timedelta) -> int:
    """Delete one batch of folded (or abandoned failed) events older than the retention;
    the job calls it until it returns less than a batch."""
    ids = list(
        await session.scalars(
            select(InboxEvent.id)
            .where(
                InboxEvent.received_at < now - retention,
                or_(
                    InboxEvent.status == InboxStatus.DONE,
                    (InboxEvent.status == InboxStatus.FAILED)
                    & InboxEvent.next_attempt_at.is_(None),
                ),
            )
            .order_by(InboxEvent.id)
            .limit(DELETE_BATCH)
        )
    )
    if ids:
        await session.execute(
            delete(InboxEvent)
            .where(InboxEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


register_pruner("inbox", prune_inbox, setting="inbox_retention_days")
