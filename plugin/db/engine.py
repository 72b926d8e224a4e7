"""Async engines for SQLite (WAL, foreign keys) and PostgreSQL.

One engine per event loop: the web server and the Dramatiq worker's event-loop thread
each get their own pool, since asyncpg connections are bound to the loop that made them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from plugin.settings import Settings


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy emits BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: two deferred transactions that both read
    # and then write would fail with SQLITE_BUSY instead of waiting for each other.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_loads(text: str | bytes) -> Any:
    """orjson, or the json module for what only it reads (NaN, which json.dumps writes)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def build_engine(settings: Settings, *, autocommit: bool = False) -> AsyncEngine:
    url = make_url(settings.async_database_url)
    # No pre-ping: it costs a round trip per transaction. A connection that died is
    # discarded on its first error (the webhook gets a 503 and Saleor redelivers).
    # JSON columns read back through orjson: the same values as the json module gives,
    # several times faster (an import reads thousands of profiles' field times a batch).
    kwargs: dict[str, Any] = {"json_deserializer": _json_loads}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 15}
    else:
        # Enough kept-open connections for a busy worker: connections above pool_size are
        # closed after use, and reconnecting on every request costs more than the request.
        size = settings.database_pool_size
        kwargs.update(pool_size=size, max_overflow=size, pool_recycle=1800)
        if autocommit:
            kwargs["isolation_level"] = "AUTOCOMMIT"
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


class Database:
    """Hands out sessions from an engine made for the running event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[int, tuple[AsyncEngine, async_sessionmaker[AsyncSession]]] = {}
        self._autocommit: dict[int, AsyncEngine] = {}

    @property
    def dialect(self) -> str:
        return "sqlite" if self.settings.is_sqlite else "postgresql"

    def _current(self) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
        loop_id = id(asyncio.get_running_loop())
        pair = self._engines.get(loop_id)
        if pair is None:
            engine = build_engine(self.settings)
            pair = (engine, async_sessionmaker(engine, expire_on_commit=False))
            self._engines[loop_id] = pair
        return pair

    @property
    def engine(self) -> AsyncEngine:
        return self._current()[0]

    @property
    def autocommit_engine(self) -> AsyncEngine:
        """PostgreSQL only: each statement commits by itself (single-statement writes on
        hot paths, one round trip). Its own small pool, set up once per connection."""
        loop_id = id(asyncio.get_running_loop())
        engine = self._autocommit.get(loop_id)
        if engine is None:
            engine = build_engine(self.settings, autocommit=True)
            self._autocommit[loop_id] = engine
        return engine

    def session(self) -> AsyncSession:
        return self._current()[1]()

    async def dispose(self) -> None:
        """Close the pool of the running loop (others are closed by their own loops)."""
        loop_id = id(asyncio.get_running_loop())
        pair = self._engines.pop(loop_id, None)
        if pair is not None:
            await pair[0].dispose()
        autocommit = self._autocommit.pop(loop_id, None)
        if autocommit is not None:
            await autocommit.dispose()
