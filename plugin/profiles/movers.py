"""Where other packages plug into profile merges: when two profiles turn out to be one
person, rows they keep under the duplicate (messages, flow runs, parcels) move to the
survivor before the duplicate is deleted, rather than being lost with it.

    from plugin.profiles.movers import register_mover
    register_mover("shipments", move_shipments)  # (session, winner_id, loser_id) -> None

The modules listed in CONTRIBUTORS are imported on first use, so every process has them
without the profile package importing them at load time.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

Mover = Callable[[AsyncSession, int, int], Awaitable[None]]

CONTRIBUTORS = ("plugin.messaging.merging", "plugin.tracking.merging")
_MOVERS: dict[str, Mover] = {}


def register_mover(name: str, mover: Mover) -> None:
    _MOVERS[name] = mover


def movers() -> list[tuple[str, Mover]]:
    for module in CONTRIBUTORS:
        importlib.import_module(module)
    return sorted(_MOVERS.items())
