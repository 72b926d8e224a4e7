"""Alembic environment: async engine, batch mode for SQLite, one transaction per migration."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from plugin.db.engine import build_engine
from plugin.db.models import Base
from plugin.settings import Settings

config = context.config
target_metadata = Base.metadata


def _settings() -> Settings:
    url = config.attributes.get("database_url")
    return Settings(database_url=url) if url else Settings()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = build_engine(_settings())
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_settings().async_database_url, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_online())
