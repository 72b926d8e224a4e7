"""Serialising work on one installation's data inside a transaction.

PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction already starts
with `BEGIN IMMEDIATE` (plugin.db.engine), which holds the single database write lock.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from plugin.db.engine import Database

FOLD_LOCK_NAMESPACE = 0x5C1  # keeps our advisory keys apart from other users of the DB


async def lock_installation(
    session: AsyncSession, installation_id: int, *, shared: bool = False
) -> None:
    """`shared`: for work split into transactions over disjoint rows of the shop (the
    import's figures, settled two slices at a time), which may run side by side; every
    fold takes the lock alone and waits for all of them, and they for it."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(
            text(f"SELECT {function}(:ns, :key)"),
            {"ns": FOLD_LOCK_NAMESPACE, "key": installation_id},
        )


REFIT_LOCK_NAMESPACE = 0x5C2


async def try_lock_refit(session: AsyncSession, installation_id: int) -> bool:
    """Whether this transaction may refit the shop's models (one worker at a time, without
    holding up the shop's folds the way `lock_installation` would)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
        {"ns": REFIT_LOCK_NAMESPACE, "key": installation_id},
    )
    return bool(got)


CAP_LOCK_NAMESPACE = 0x5C3


async def lock_profiles(session: AsyncSession, profile_ids: Iterable[int]) -> None:
    """PostgreSQL: hold these customers for the rest of the transaction, in id order (two
    claimers of overlapping sets never deadlock). Frequency caps use it: a second worker
    waits for the first's committed sends before counting a customer's recent ones."""
    keys = sorted(set(profile_ids))
    if not keys or session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock(:ns, k)"
            " FROM (SELECT k FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS ordered"
        ),
        {"ns": CAP_LOCK_NAMESPACE, "keys": keys},
    )


FILL_LOCK_NAMESPACE = 0x5C4
_fills_here: set[int] = set()  # SQLite: the shops whose fill this process is running
_fills_guard = threading.Lock()


@asynccontextmanager
async def hold_segment_fill(db: Database, installation_id: int) -> AsyncIterator[bool]:
    """Whether this worker may compute the shop's waiting segments in chunks (False: one
    is on it). A fill spans many transactions, so the fold lock cannot hold it. PostgreSQL:
    a session-level advisory lock on a connection of its own, released when done or when
    a crashed worker's connection dies. SQLite (one process): a lock per process."""
    if db.dialect != "postgresql":
        with _fills_guard:
            got = installation_id not in _fills_here
            _fills_here.add(installation_id)
        try:
            yield got
        finally:
            if got:
                with _fills_guard:
                    _fills_here.discard(installation_id)
        return
    params = {"ns": FILL_LOCK_NAMESPACE, "key": installation_id}
    async with db.autocommit_engine.connect() as connection:
        got = bool(await connection.scalar(text(_TRY_FILL), params))
        try:
            yield got
        finally:
            if got:
                await connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), params)


_TRY_FILL = "SELECT pg_try_advisory_lock(:ns, :key)"
