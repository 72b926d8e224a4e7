"""The person's messages in a GDPR export, and erased with them: the address, subject,
variables and errors go; channel, template, outcome and timing stay for the statistics.
A hard-bounced address of theirs is forgotten too (their identities stay suppressed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.messaging.models import Message, Undeliverable
from plugin.profiles.erasers import ErasureScope, register_eraser, register_exporter
from plugin.profiles.privacy import scrub


async def _messages(session: AsyncSession, scope: ErasureScope) -> list[Message]:
    return list(
        await session.scalars(
            select(Message)
            .where(
                Message.installation_id == scope.installation_id,
                Message.profile_id == scope.profile_id,
            )
            .order_by(Message.id)
        )
    )


async def export_messages(session: AsyncSession, scope: ErasureScope) -> list[dict[str, Any]]:
    return [
        {
            "channel": m.channel.value,
            "template": m.template_key,
            "marketing": m.marketing,
            "topic": m.topic,
            "recipient": m.recipient,
            "subject": m.subject,
            "status": m.status.value,
            "created_at": m.created_at,
            "sent_at": m.sent_at,
            "opened_at": m.opened_at,
            "clicked_at": m.clicked_at,
        }
        for m in await _messages(session, scope)
    ]


async def erase_messages(session: AsyncSession, scope: ErasureScope) -> int:
    messages = await _messages(session, scope)
    for message in messages:
        message.recipient = None
        message.subject = scrub(message.subject, scope.pattern)
        message.variables = scrub(message.variables, scope.pattern)
        message.error = scrub(message.error, scope.pattern)
        message.links = None
    if scope.needles:
        await session.execute(
            delete(Undeliverable).where(
                Undeliverable.installation_id == scope.installation_id,
                func.lower(Undeliverable.address).in_(scope.needles),
            )
        )
    return len(messages)


register_eraser("messages", erase_messages)
register_exporter("messages", export_messages)
