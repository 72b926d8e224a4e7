"""Profile fields where the newest Saleor snapshot wins, field by field.

Each field remembers the Saleor timestamp of its value (`Profile.field_times`). A value
is replaced only by a non-null value from a snapshot at least as new, so the final
profile is the same whatever order the events arrive in.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from plugin.profiles.models import Profile

PROFILE_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "language",
        "city",
        "country",
        "phone",
        "note",
        "external_reference",
        "is_active",
        "is_confirmed",
        "date_joined",
        "last_login",
        "addresses",
        "saleor_metadata",
    }
)


def field_time(profile: Profile, name: str) -> datetime | None:
    raw = (profile.field_times or {}).get(name)
    return datetime.fromisoformat(raw) if raw else None


def _wins(new_at: datetime, new: Any, old_at: datetime, old: Any) -> bool:
    # Equal timestamps with different values: pick one deterministically, not by arrival.
    if new_at != old_at:
        return new_at > old_at
    return repr(new) >= repr(old)


@functools.lru_cache(maxsize=65_536)
def _moment(stamp: str) -> datetime:
    """A field time as stored (ISO text), parsed once: every fold of a customer compares
    against the same few stamps."""
    return datetime.fromisoformat(stamp)


def apply_fields(profile: Profile, observed_at: datetime, values: dict[str, Any]) -> None:
    times = dict(profile.field_times or {})
    stamp: str | None = None  # observed_at as stored, written once however many fields win
    for name, value in values.items():
        if name not in PROFILE_FIELDS:
            raise KeyError(name)
        if value is None:
            continue
        current = times.get(name)
        if current is None or _wins(observed_at, value, _moment(current), getattr(profile, name)):
            setattr(profile, name, value)
            stamp = stamp or observed_at.isoformat()
            times[name] = stamp
    if stamp is not None:
        profile.field_times = times  # a new dict, so SQLAlchemy sees the change


def take_newer_fields(winner: Profile, loser: Profile) -> None:
    """On a merge, every field keeps the newer of the two values."""
    for name, raw in (loser.field_times or {}).items():
        apply_fields(winner, datetime.fromisoformat(raw), {name: getattr(loser, name)})


def apply_source(profile: Profile, observed_at: datetime, source: dict[str, str | None]) -> None:
    """First touch: the earliest object that carried UTM tags or a referrer gives the source."""
    if not any(source.values()):
        return
    if profile.source_at is not None and profile.source_at <= observed_at:
        return
    for name, value in source.items():
        setattr(profile, name, value)
    profile.source_at = observed_at
