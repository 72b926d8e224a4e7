"""Queueing and delivering messages, at most once each.

`queue` inserts the message under its idempotency key (a second insert is a no-op) and
sends a job after commit. `deliver` claims it in one transaction (QUEUED → SENDING, under
a row lock on PostgreSQL; SQLite has one writer), calls the provider outside any
transaction, and records the outcome in a second one. A worker killed between the two
leaves the message SENDING: it is never handed to a provider again, and the tick later
marks it failed with "outcome unknown" — a possible loss, never a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.upsert import insert_ignore
from plugin.kit.after_commit import enqueue_after_commit, unit_of_work
from plugin.messaging import variables as template_vars
from plugin.messaging.channels import Outgoing, PermanentError, Provider, TransientError
from plugin.messaging.config import NotConfigured, pacing_of, provider_for, sender_of, shop_settings
from plugin.messaging.consent import address_of, mark_undeliverable, refusal
from plugin.messaging.links import Links, track_html
from plugin.messaging.models import Channel, Message, MessageStatus, MessageTemplate
from plugin.messaging.pacing import after_quiet_hours, next_cap_slot
from plugin.messaging.templates import Rendered, TemplateProblem, render
from plugin.profiles.models import Profile
from plugin.timeline.service import record

logger = logging.getLogger(__name__)
SEND_ACTOR = "messaging.send"
STALE_SENDING = timedelta(hours=1)
MESSAGE_CLAIM = timedelta(minutes=2)  # a tick's hand-out holds this long
STAFF_TOPIC = "staff"  # notify_staff: to the shop's staff, about this customer


@dataclass(frozen=True)
class MessageRequest:
    installation_id: int
    profile_id: int
    idempotency_key: str
    channel: Channel
    template_key: str
    marketing: bool
    topic: str = "offers"
    variables: dict[str, Any] = field(default_factory=dict)
    flow_id: int | None = None
    run_id: int | None = None
    step_index: int | None = None
    variant: str | None = None


async def queue(session: AsyncSession, request: MessageRequest, now: datetime) -> int | None:
    """Insert the message (None: this key was queued before) and send it after commit."""
    message_id = await insert_ignore(
        session,
        Message,
        {
            "installation_id": request.installation_id,
            "profile_id": request.profile_id,
            "idempotency_key": request.idempotency_key[:256],
            "channel": request.channel,
            "template_key": request.template_key,
            "marketing": request.marketing,
            "topic": request.topic,
            "variables": request.variables,
            "flow_id": request.flow_id,
            "run_id": request.run_id,
            "step_index": request.step_index,
            "variant": request.variant,
            "status": MessageStatus.QUEUED,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
        conflict_columns=["installation_id", "idempotency_key"],
    )
    if message_id is not None:
        enqueue_after_commit(session, SEND_ACTOR, message_id=message_id)
    return message_id


def links_for(ctx: AppContext) -> Links:
    return Links(ctx.settings.secret_key.get_secret_value(), ctx.settings.public_url)


def backoff(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, … capped at 6 h."""
    return min(timedelta(seconds=30 * 4 ** max(attempts - 1, 0)), timedelta(hours=6))


@dataclass
class _Claimed:
    message_id: int
    installation_id: int
    channel: Channel
    recipient: str
    provider: Provider
    outgoing: Outgoing
    attempts: int
    claimed_at: datetime


async def _note(
    session: AsyncSession, message: Message, kind: str, summary: str, now: datetime
) -> None:
    await record(
        session,
        installation_id=message.installation_id,
        profile_id=message.profile_id,
        kind=kind,
        occurred_at=now,
        subject_type="message",
        subject_id=str(message.id),
        summary=summary,
        data={
            "message_id": message.id,
            "channel": message.channel.value,
            "template": message.template_key,
            "flow_id": message.flow_id,
            "variant": message.variant,
            "error": message.error,
        },
        dedup_key=f"message:{message.id}:{kind}:{message.attempts}",
    )


async def _fail(session: AsyncSession, message: Message, reason: str, now: datetime) -> None:
    message.status, message.error = MessageStatus.FAILED, reason[:1024]
    await _note(session, message, "message_failed", f"Message not sent: {reason}"[:1024], now)


async def render_message(
    session: AsyncSession, links: Links, message: Message, profile: Profile
) -> Rendered:
    template = await session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.installation_id == message.installation_id,
            MessageTemplate.key == message.template_key,
        )
    )
    if template is None:
        raise TemplateProblem("", "template", f"no template {message.template_key!r}")
    sources = " ".join(str(v) for parts in template.contents.values() for v in parts.values())
    variables = await template_vars.build(
        session, profile, message.variables, wants_recommendations="recommendations" in sources
    )
    variables["unsubscribe_url"] = links.unsubscribe(message.id)
    variables["preferences_url"] = links.preferences(message.installation_id, profile.id)
    return render(template.contents, profile.language, variables)


async def _claim(
    ctx: AppContext, message_id: int, now: datetime, handed_out: bool
) -> _Claimed | None:
    links = links_for(ctx)
    async with unit_of_work(ctx.db) as session:
        message = await session.scalar(
            select(Message).where(Message.id == message_id).with_for_update()
        )
        if message is None or message.status is not MessageStatus.QUEUED:
            return None
        # a tick's hand-out pushed next_attempt_at ahead by the claim period
        latest = now + MESSAGE_CLAIM if handed_out else now
        if message.next_attempt_at is not None and message.next_attempt_at > latest:
            return None
        profile = await session.get(Profile, message.profile_id)
        if profile is None:
            return None
        staff_to = str((message.variables or {}).get("staff_to") or "")
        if message.topic == STAFF_TOPIC:
            reason = None if staff_to else "no staff address"
        else:
            reason = await refusal(
                session, profile, message.channel, marketing=message.marketing, topic=message.topic
            )
        if reason is not None:
            message.status, message.error = MessageStatus.SKIPPED, reason
            await _note(session, message, "message_skipped", f"Message not sent: {reason}", now)
            return None
        shop = await shop_settings(session, message.installation_id)
        if message.marketing and await _postponed(session, message, profile, shop, now):
            return None
        try:
            provider = provider_for(message.channel, shop, ctx.settings, ctx.http, ctx.box)
            rendered = await render_message(session, links, message, profile)
        except (TemplateProblem, NotConfigured, ValueError) as problem:
            await _fail(session, message, str(problem), now)
            return None
        recipient = (
            staff_to if message.topic == STAFF_TOPIC else address_of(profile, message.channel) or ""
        )
        html, recorded = track_html(rendered.html, links, message.id) if rendered.html else ("", [])
        headers: dict[str, str] = {}
        if message.channel is Channel.EMAIL and message.marketing:
            headers["List-Unsubscribe"] = f"<{links.unsubscribe(message.id)}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.status, message.attempts = MessageStatus.SENDING, message.attempts + 1
        message.sent_at, message.recipient = now, recipient
        message.subject, message.links = rendered.subject[:998] or None, recorded
        return _Claimed(
            message_id=message.id,
            installation_id=message.installation_id,
            channel=message.channel,
            recipient=recipient,
            provider=provider,
            outgoing=Outgoing(
                to=recipient,
                subject=rendered.subject,
                html=html,
                text=rendered.text,
                sender=sender_of(shop, ctx.settings),
                headers=headers,
                message_id=f"<crm-{message.installation_id}-{message.id}@saleor-crm>",
            ),
            attempts=message.attempts,
            claimed_at=now,
        )


async def _postponed(
    session: AsyncSession, message: Message, profile: Profile, shop: Any, now: datetime
) -> bool:
    """Cap and quiet hours: move the message to its next slot (False: send now)."""
    pacing = pacing_of(shop)
    tz = (profile.saleor_metadata or {}).get("timezone")
    slot = now
    for _ in range(4):  # a cap slot may land in quiet hours and the other way round
        moved = await next_cap_slot(
            session, profile.id, message.channel, slot, pacing.caps, message.id
        )
        moved = after_quiet_hours(moved, pacing, tz if isinstance(tz, str) else None)
        if moved == slot:
            break
        slot = moved
    if slot <= now:
        return False
    if slot - message.created_at > pacing.max_delay:
        message.postponed_reason = "sent at the maximum delay although over the cap"
        return False
    message.next_attempt_at = slot
    message.postponed_reason = f"frequency cap or quiet hours: next slot {slot.isoformat()}"
    return True


async def _finish(
    ctx: AppContext, claimed: _Claimed, provider_id: str | None, error: Exception | None
) -> MessageStatus:
    now = max(utcnow(), claimed.claimed_at)  # a caller's clock may run ahead (tests, replays)
    async with unit_of_work(ctx.db) as session:
        message = await session.get(Message, claimed.message_id)
        if message is None:
            return MessageStatus.FAILED
        if error is None:
            message.status, message.provider_id, message.error = (
                MessageStatus.SENT,
                (provider_id or "")[:256],
                None,
            )
            summary = f"Sent {message.channel.value} “{message.subject or message.template_key}”"
            await _note(session, message, "message_sent", summary[:1024], now)
        elif isinstance(error, PermanentError):
            await mark_undeliverable(
                session, claimed.installation_id, claimed.channel, claimed.recipient, str(error)
            )
            await _fail(session, message, f"permanent: {error}", now)
        elif claimed.attempts < ctx.settings.messaging_send_max_attempts:
            message.status, message.error = MessageStatus.QUEUED, f"transient: {error}"[:1024]
            message.next_attempt_at = now + backoff(claimed.attempts)
        else:
            await _fail(session, message, f"gave up after {claimed.attempts} tries: {error}", now)
        return message.status


async def deliver(
    ctx: AppContext, message_id: int, now: datetime | None = None, *, handed_out: bool = False
) -> None:
    claimed = await _claim(ctx, message_id, now or utcnow(), handed_out)
    if claimed is None:
        return
    try:
        provider_id = await claimed.provider.send(claimed.outgoing)
    except (TransientError, PermanentError) as error:
        logger.warning("message %s not delivered: %s", message_id, error)
        await _finish(ctx, claimed, None, error)
        return
    await _finish(ctx, claimed, provider_id, None)


async def give_up_stale(session: AsyncSession, now: datetime) -> int:
    """Messages left SENDING by a worker that died: never retried (at most once)."""
    result = await session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SENDING, Message.sent_at < now - STALE_SENDING)
        .values(
            status=MessageStatus.FAILED,
            error="outcome unknown: the worker stopped while sending; not retried",
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
