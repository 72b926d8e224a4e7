"""The per-request GraphQL context: viewer, database sessions, fresh DataLoaders.

Strawberry resolves sibling fields concurrently and an AsyncSession must not run two
statements at once. On PostgreSQL the relations' batches (`scalars`, `rows`) are read on
up to `READERS` autocommit connections at once, so a card's dozen statements overlap
instead of queueing (at READ COMMITTED each statement has its own snapshot either way).
Elsewhere, and for domain code (`run`, `scalar`), reads take turns on one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.api.auth import Viewer, authenticate
from plugin.api.errors import ApiError, Forbidden, Unauthenticated
from plugin.api.loaders import Loaders
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.kit.after_commit import unit_of_work

T = TypeVar("T")
# Connections one request may read on at once (PostgreSQL).
READERS = 3
logger = logging.getLogger(__name__)

# Set while a GraphQL request runs (logging, and tests that count its SQL statements).
CURRENT: ContextVar[ApiContext | None] = ContextVar("crm_api_request", default=None)


@dataclass
class ApiContext:
    app: AppContext
    viewer: Viewer | None
    auth_error: ApiError | None
    now: datetime = field(default_factory=utcnow)
    _session: AsyncSession | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _idle_readers: list[AsyncSession] = field(default_factory=list)
    _readers: list[AsyncSession] = field(default_factory=list)
    _reader_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(READERS))

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    @classmethod
    async def open(cls, app: AppContext, headers: Mapping[str, str]) -> ApiContext:
        try:
            viewer = await authenticate(app, headers)
        except ApiError as error:
            return cls(app, None, error)
        if viewer is None:
            missing = Unauthenticated(
                "Authentication required: send `Authorization: Bearer <token>` "
                "(and `saleor-api-url` with a dashboard token)."
            )
            return cls(app, None, missing)
        return cls(app, viewer, None)

    @property
    def dialect(self) -> str:
        return self.app.db.dialect

    def require(self, *permissions: str) -> Viewer:
        """The viewer, if it holds every permission; UNAUTHENTICATED or FORBIDDEN if not."""
        if self.viewer is None:
            raise self.auth_error or Unauthenticated("Authentication required.")
        missing = [p for p in permissions if p not in self.viewer.permissions]
        if missing:
            raise Forbidden(f"Needs the {', '.join(missing)} permission.", required=missing)
        return self.viewer

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.app.db.session()
        return self._session

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        if self.dialect != "postgresql":
            async with self._lock:
                yield self.session
            return
        async with self._reader_slots:
            if self._idle_readers:
                reader = self._idle_readers.pop()
            else:
                reader = AsyncSession(self.app.db.autocommit_engine, expire_on_commit=False)
                self._readers.append(reader)
            try:
                yield reader
            finally:
                self._idle_readers.append(reader)

    async def scalars(self, statement: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
        async with self._reading() as session:
            return list(await session.scalars(statement, params))

    async def scalar(self, statement: Any) -> Any:
        async with self._lock:
            return await self.session.scalar(statement)

    async def rows(
        self, statement: Any, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        async with self._reading() as session:
            return [tuple(row) for row in await session.execute(statement, params)]

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Domain code that takes a session (e.g. resolving segment thresholds), in turn."""
        async with self._lock:
            return await work(self.session)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One unit of work for a mutation; later reads see what it committed."""
        async with self._lock:
            if self._session is not None and self._session.in_transaction():
                # End the read transaction first: on SQLite it holds the write lock.
                await self._session.rollback()
            async with unit_of_work(self.app.db) as session:
                yield session
        self.loaders = Loaders(self)  # what the loaders cached may be stale now

    async def close(self) -> None:
        for reader in self._readers:
            await _close(reader)
        if self._session is None:
            return
        async with self._lock:  # never under a statement still running
            await _close(self._session)


async def _close(session: AsyncSession) -> None:
    try:
        await session.close()
    except Exception:
        # A resolver cancelled mid-statement (a sibling field failed) can leave the
        # connection unusable: drop it, rather than fail an answer already made.
        logger.warning("discarding a broken database connection", exc_info=True)
        with contextlib.suppress(Exception):
            await session.invalidate()


Info = strawberry.Info[ApiContext, None]
