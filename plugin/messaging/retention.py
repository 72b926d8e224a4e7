"""What a message keeps after the retention period: its outcome, not its content.

Registered with the lifecycle job (`MESSAGE_BODY_RETENTION_DAYS`): finished messages
older than that lose their recipient, subject, template variables and recorded links;
status, times, flow, step and variant stay, so the stats stay right. A click on a link
that old answers 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.lifecycle.retention import DELETE_BATCH, register_pruner
from plugin.messaging.models import Message, MessageStatus

FINISHED = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SKIPPED)


async def prune_message_bodies(session: AsyncSession, now: datetime, retention: timedelta) -> int:
    ids = list(
        await session.scalars(
            select(Message.id)
            .where(
                Message.created_at < now - retention,
                Message.status.in_(FINISHED),
                Message.variables.is_not(None),
            )
            .order_by(Message.id)
            .limit(DELETE_BATCH)
        )
    )
    if ids:
        await session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(recipient=None, subject=None, variables=null(), links=null())
            .execution_options(synchronize_session=False)
        )
    return len(ids)


register_pruner("message_bodies", prune_message_bodies, setting="message_body_retention_days")
