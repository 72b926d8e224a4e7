"""Quiet hours and frequency caps: they move a message later, never drop it.

A cap counts marketing messages per channel across all flows in sliding windows; a
message over the cap waits for the next free slot, up to the shop's maximum delay, after
which it goes anyway (said on the message). Quiet hours hold in the customer's time zone
(profile metadata `timezone`) or the shop's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.messaging.models import Channel, Message, MessageStatus

WINDOWS = {"16h": timedelta(hours=16), "1d": timedelta(days=1), "7d": timedelta(days=7)}
DEFAULT_CAPS: dict[str, dict[str, int]] = {
    "email": {"16h": 1, "7d": 3},
    "sms": {"1d": 1, "7d": 2},
    "telegram": {"1d": 1, "7d": 3},
}


@dataclass(frozen=True)
class Pacing:
    timezone: str
    quiet_start_hour: int | None
    quiet_end_hour: int | None
    caps: dict[str, dict[str, int]]
    max_delay: timedelta


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def validate_caps(raw: Any) -> dict[str, dict[str, int]]:
    if not isinstance(raw, dict):
        raise ValueError('caps look like {"email": {"16h": 1, "7d": 3}}')
    caps: dict[str, dict[str, int]] = {}
    for channel, windows in raw.items():
        if channel not in {c.value for c in Channel} or not isinstance(windows, dict):
            raise ValueError(f"unknown channel {channel!r} in caps")
        for window, limit in windows.items():
            if window not in WINDOWS:
                raise ValueError(f"a cap window is one of {', '.join(WINDOWS)}, not {window!r}")
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ValueError(f"caps.{channel}.{window} must be a whole number ≥ 1")
        caps[channel] = {w: int(n) for w, n in windows.items()}
    return caps


def after_quiet_hours(when: datetime, pacing: Pacing, tz_name: str | None) -> datetime:
    """`when`, or the end of the quiet hours it falls into (local time of the customer)."""
    start, end = pacing.quiet_start_hour, pacing.quiet_end_hour
    if start is None or end is None or start == end:
        return when
    local = when.astimezone(zone(tz_name, pacing.timezone))
    hour = local.hour
    quiet = (start <= hour or hour < end) if start > end else (start <= hour < end)
    if not quiet:
        return when
    wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if wake <= local:
        wake += timedelta(days=1)
    return wake.astimezone(when.tzinfo)


LONGEST = max(WINDOWS.values())


async def recent_sends(
    session: AsyncSession, profile_ids: Collection[int], since: datetime, exclude: Collection[int]
) -> dict[tuple[int, Channel], list[datetime]]:
    """Marketing sends per (profile, channel) since `since`, oldest first: one statement
    for a whole batch's caps."""
    found: dict[tuple[int, Channel], list[datetime]] = {}
    if not profile_ids:
        return found
    query = select(Message.profile_id, Message.channel, Message.sent_at).where(
        Message.profile_id.in_(profile_ids),
        Message.marketing.is_(True),
        Message.status.in_([MessageStatus.SENT, MessageStatus.SENDING]),
        Message.sent_at > since,
    )
    if exclude:
        query = query.where(Message.id.not_in(exclude))
    for profile_id, channel, sent_at in await session.execute(query):
        if sent_at is not None:
            found.setdefault((profile_id, Channel(channel)), []).append(sent_at)
    for times in found.values():
        times.sort()
    return found


def cap_slot(sent: list[datetime], when: datetime, limits: dict[str, int]) -> datetime:
    """The earliest time ≥ `when` at which another message fits every window, given the
    send times `sent` (sorted)."""
    slot = when
    for _ in range(len(sent) + 1):
        moved = slot
        for window, limit in limits.items():
            span = WINDOWS[window]
            inside = [t for t in sent if t > moved - span]
            if len(inside) >= limit:
                # wait until enough of them fall out of the window
                moved = max(moved, inside[len(inside) - limit] + span)
        if moved == slot:
            return slot
        slot = moved
    return slot


def next_slot(
    sent: list[datetime], now: datetime, channel: Channel, pacing: Pacing, tz: str | None
) -> datetime:
    """Caps and quiet hours together: a cap slot may land in quiet hours and the other
    way round, so both are applied until neither moves it."""
    limits = pacing.caps.get(channel.value) or {}
    slot = now
    for _ in range(4):
        moved = cap_slot(sent, slot, limits) if limits else slot
        moved = after_quiet_hours(moved, pacing, tz)
        if moved == slot:
            break
        slot = moved
    return slot
