"""Where other packages plug into GDPR export and erasure.

The profile package erases what it knows (profiles, identities, orders, checkouts,
fulfillments, timeline, notes, raw webhooks); a package that stores personal data of its
own — sent messages, parcels and their tracking events — registers an eraser (and an
exporter) here, so one `anonymize_profile` call leaves no table holding the person's
e-mail, phone or name, and one export holds everything:

    from plugin.profiles.erasers import register_eraser, register_exporter
    register_eraser("messages", erase_messages)      # (session, scope) -> rows touched
    register_exporter("messages", export_messages)   # (session, scope) -> JSON-ready rows

The registering modules are listed in CONTRIBUTORS and imported on first use, so every
process (web, worker, command line) has them without the profile package importing them
at load time.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class ErasureScope:
    """Who is erased: their profile, and every string that identified them (lower case:
    e-mails, phones, names, cities, Saleor ids) with one case-insensitive pattern over
    them. `plugin.profiles.privacy.scrub(value, scope.pattern)` replaces them inside text
    and JSON alike."""

    installation_id: int
    profile_id: int
    needles: list[str]
    pattern: re.Pattern[str] | None
    now: datetime


Eraser = Callable[[AsyncSession, ErasureScope], Awaitable[int]]
Exporter = Callable[[AsyncSession, ErasureScope], Awaitable[list[dict[str, Any]]]]

_ERASERS: dict[str, Eraser] = {}
_EXPORTERS: dict[str, Exporter] = {}


def register_eraser(name: str, eraser: Eraser) -> None:
    _ERASERS[name] = eraser


def register_exporter(name: str, exporter: Exporter) -> None:
    _EXPORTERS[name] = exporter


CONTRIBUTORS = ("plugin.messaging.privacy", "plugin.tracking.privacy")


def _load_contributors() -> None:
    for module in CONTRIBUTORS:
        importlib.import_module(module)


def erasers() -> list[tuple[str, Eraser]]:
    _load_contributors()
    return sorted(_ERASERS.items())


def exporters() -> list[tuple[str, Exporter]]:
    _load_contributors()
    return sorted(_EXPORTERS.items())
