"""Who may get what: consent per channel, topic opt-outs, suppression, hard bounces.

Marketing needs the identity's consent for that channel; transactional messages (an
order's parcel, a receipt) go whenever there is a deliverable address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.messaging.models import Channel, TopicOptOut, Undeliverable
from plugin.profiles.consent import set_consent
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile
from plugin.profiles.suppression import salt_for, suppression_hash
from plugin.timeline.service import record

IDENTITY_KIND = {Channel.EMAIL: IdentityKind.EMAIL, Channel.SMS: IdentityKind.PHONE}
TELEGRAM_CHAT_KEY = "telegram_chat_id"
TELEGRAM_CONSENT_KEY = "marketing_consent_telegram"


def address_of(profile: Profile, channel: Channel) -> str | None:
    if channel is Channel.EMAIL:
        return profile.email
    if channel is Channel.SMS:
        return profile.phone
    chat = (profile.saleor_metadata or {}).get(TELEGRAM_CHAT_KEY)
    return str(chat) if chat not in (None, "") else None


async def _identity(
    session: AsyncSession, profile: Profile, channel: Channel, address: str
) -> Identity | None:
    kind = IDENTITY_KIND.get(channel)
    if kind is None:
        return None
    return await session.scalar(
        select(Identity).where(
            Identity.installation_id == profile.installation_id,
            Identity.kind == kind,
            Identity.value == address,
        )
    )


_salts: dict[int, str] = {}


async def _suppressed(
    session: AsyncSession, installation_id: int, kind: IdentityKind, address: str
) -> bool:
    """`plugin.profiles.suppression.is_suppressed`, with the shop's salt (its Saleor API
    URL, fixed for an installation id) remembered: one statement per check, not two."""
    salt = _salts.get(installation_id)
    if salt is None:
        salt = _salts[installation_id] = await salt_for(session, installation_id)
    hashed = suppression_hash(salt, kind, address)
    found = await session.scalar(
        select(Identity.id).where(
            Identity.installation_id == installation_id,
            Identity.kind == kind,
            Identity.value == hashed,
        )
    )
    return found is not None


async def refusal(
    session: AsyncSession, profile: Profile, channel: Channel, *, marketing: bool, topic: str
) -> str | None:
    """Why this message must not go (None: it may)."""
    address = address_of(profile, channel)
    if not address:
        return f"no {channel.value} address"
    kind = IDENTITY_KIND.get(channel)
    if kind is not None and await _suppressed(session, profile.installation_id, kind, address):
        return "address erased (suppression list)"
    bounced = await session.scalar(
        select(Undeliverable.id).where(
            Undeliverable.installation_id == profile.installation_id,
            Undeliverable.channel == channel,
            Undeliverable.address == address,
        )
    )
    if bounced is not None:
        return "address marked undeliverable"
    if not marketing:
        return None
    if channel is Channel.TELEGRAM:
        granted = str((profile.saleor_metadata or {}).get(TELEGRAM_CONSENT_KEY, "")).lower()
        if granted != "true":
            return "no marketing consent for telegram"
    else:
        identity = await _identity(session, profile, channel, address)
        if identity is None or identity.marketing_consent is not ConsentState.GRANTED:
            return f"no marketing consent for {channel.value}"
    opted_out = await session.scalar(
        select(TopicOptOut.id).where(
            TopicOptOut.profile_id == profile.id,
            TopicOptOut.channel == channel,
            TopicOptOut.topic.in_([topic, "*"]),
        )
    )
    if opted_out is not None:
        return f"unsubscribed from {topic!r}"
    return None


async def opted_out_topics(session: AsyncSession, profile_id: int) -> set[tuple[str, str]]:
    rows = await session.execute(
        select(TopicOptOut.channel, TopicOptOut.topic).where(TopicOptOut.profile_id == profile_id)
    )
    return {(Channel(c).value, t) for c, t in rows}


async def set_topic(
    session: AsyncSession,
    profile: Profile,
    channel: Channel,
    topic: str,
    *,
    subscribed: bool,
    source: str,
    now: datetime,
) -> None:
    """Opt in or out of one topic (`*`: every marketing message on the channel; the
    channel's consent is withdrawn too). Written to the timeline with its source."""
    if subscribed:
        existing = await session.scalar(
            select(TopicOptOut).where(
                TopicOptOut.profile_id == profile.id,
                TopicOptOut.channel == channel,
                TopicOptOut.topic == topic,
            )
        )
        if existing is None:
            return
        await session.delete(existing)
    else:
        inserted = await insert_ignore(
            session,
            TopicOptOut,
            {
                "installation_id": profile.installation_id,
                "profile_id": profile.id,
                "channel": channel,
                "topic": topic,
                "created_at": now,
                "source": source[:256],
            },
            conflict_columns=["profile_id", "channel", "topic"],
        )
        if inserted is None:
            return
    if topic == "*" and not subscribed:
        await withdraw_consent(session, profile, channel, source=source, now=now)
    what = "all marketing" if topic == "*" else f"“{topic}”"
    await record(
        session,
        installation_id=profile.installation_id,
        profile_id=profile.id,
        kind="consent_changed",
        occurred_at=now,
        dedup_key=f"topic:{profile.id}:{channel.value}:{topic}:{now.isoformat()}",
        summary=f"{'Subscribed to' if subscribed else 'Unsubscribed from'} {what} "
        f"by {channel.value} ({source})",
        data={
            "channel": channel.name,
            "topic": topic,
            "granted": subscribed,
            "by": source,
        },
    )


async def withdraw_consent(
    session: AsyncSession, profile: Profile, channel: Channel, *, source: str, now: datetime
) -> None:
    address = address_of(profile, channel)
    if address is None:
        return
    identity = await _identity(session, profile, channel, address)
    if identity is not None:
        set_consent(identity, ConsentState.DENIED, now, source)


async def mark_undeliverable(
    session: AsyncSession, installation_id: int, channel: Channel, address: str, reason: str
) -> None:
    await insert_ignore(
        session,
        Undeliverable,
        {
            "installation_id": installation_id,
            "channel": channel,
            "address": address,
            "reason": reason[:1024],
        },
        conflict_columns=["installation_id", "channel", "address"],
    )
