"""Who may get what: consent per channel, topic opt-outs, suppression, hard bounces.

Marketing needs the identity's consent for that channel; transactional messages (an
order's parcel, a receipt) go whenever there is a deliverable address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


async def _salt(session: AsyncSession, installation_id: int) -> str:
    """The shop's suppression salt (its Saleor API URL, fixed for an installation id),
    remembered per worker."""
    salt = _salts.get(installation_id)
    if salt is None:
        salt = _salts[installation_id] = await salt_for(session, installation_id)
    return salt


@dataclass(frozen=True)
class Ask:
    """One question for `refusals`: may this profile get this message?"""

    profile: Profile
    channel: Channel
    marketing: bool
    topic: str


async def refusals(
    session: AsyncSession, installation_id: int, asks: Sequence[Ask]
) -> list[str | None]:
    """Why each message must not go (None: it may), for many at once: four statements
    for the whole batch (suppression, bounces, consent, topic opt-outs), not per message."""
    addresses = [address_of(a.profile, a.channel) for a in asks]
    salt = await _salt(session, installation_id) if any(addresses) else ""
    hashes: dict[int, str] = {}
    for i, (ask, address) in enumerate(zip(asks, addresses, strict=True)):
        kind = IDENTITY_KIND.get(ask.channel)
        if address and kind is not None:
            hashes[i] = suppression_hash(salt, kind, address)
    suppressed = set(
        await _values_in(session, installation_id, Identity.value, set(hashes.values()))
    )
    wanted = {a for a in addresses if a}
    bounced = set()
    if wanted:
        refused = await session.execute(
            select(Undeliverable.channel, Undeliverable.address).where(
                Undeliverable.installation_id == installation_id,
                Undeliverable.address.in_(wanted),
            )
        )
        bounced = {(Channel(c), a) for c, a in refused}
    consented: set[tuple[IdentityKind, str]] = set()
    marketing_addresses = {a for ask, a in zip(asks, addresses, strict=True) if a and ask.marketing}
    if marketing_addresses:
        granted = await session.execute(
            select(Identity.kind, Identity.value).where(
                Identity.installation_id == installation_id,
                Identity.value.in_(marketing_addresses),
                Identity.marketing_consent == ConsentState.GRANTED,
            )
        )
        consented = {(IdentityKind(k), v) for k, v in granted}
    opted: set[tuple[int, Channel, str]] = set()
    marketing_profiles = {a.profile.id for a in asks if a.marketing}
    if marketing_profiles:
        outs = await session.execute(
            select(TopicOptOut.profile_id, TopicOptOut.channel, TopicOptOut.topic).where(
                TopicOptOut.profile_id.in_(marketing_profiles)
            )
        )
        opted = {(p, Channel(c), t) for p, c, t in outs}
    reasons: list[str | None] = []
    for i, (ask, address) in enumerate(zip(asks, addresses, strict=True)):
        reasons.append(_why_not(ask, address, hashes.get(i), suppressed, bounced, consented, opted))
    return reasons


def _why_not(
    ask: Ask,
    address: str | None,
    hashed: str | None,
    suppressed: set[str],
    bounced: set[tuple[Channel, str]],
    consented: set[tuple[IdentityKind, str]],
    opted: set[tuple[int, Channel, str]],
) -> str | None:
    channel = ask.channel
    if not address:
        return f"no {channel.value} address"
    if hashed is not None and hashed in suppressed:
        return "address erased (suppression list)"
    if (channel, address) in bounced:
        return "address marked undeliverable"
    if not ask.marketing:
        return None
    if channel is Channel.TELEGRAM:
        granted = str((ask.profile.saleor_metadata or {}).get(TELEGRAM_CONSENT_KEY, "")).lower()
        if granted != "true":
            return "no marketing consent for telegram"
    elif (IDENTITY_KIND[channel], address) not in consented:
        return f"no marketing consent for {channel.value}"
    profile_id = ask.profile.id
    if (profile_id, channel, ask.topic) in opted or (profile_id, channel, "*") in opted:
        return f"unsubscribed from {ask.topic!r}"
    return None


async def _values_in(
    session: AsyncSession, installation_id: int, column: Any, values: set[str]
) -> list[str]:
    if not values:
        return []
    rows = await session.scalars(
        select(column).where(Identity.installation_id == installation_id, column.in_(values))
    )
    return list(rows)


async def refusal(
    session: AsyncSession, profile: Profile, channel: Channel, *, marketing: bool, topic: str
) -> str | None:
    """Why this message must not go (None: it may)."""
    (reason,) = await refusals(
        session, profile.installation_id, [Ask(profile, channel, marketing, topic)]
    )
    return reason


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
