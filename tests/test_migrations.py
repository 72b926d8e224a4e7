"""Models and migrations agree, there is one head, and downgrade/upgrade round-trips."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from plugin.db.engine import Database
from plugin.db.migrate import alembic_config
from plugin.db.models import Base


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1


async def test_models_match_migrations(db: Database) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_sqlite_pragmas_or_postgres(db: Database) -> None:
    from sqlalchemy import text

    async with db.engine.connect() as connection:
        if db.dialect == "sqlite":
            assert (await connection.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await connection.scalar(text("PRAGMA foreign_keys"))) == 1
        else:
            assert "PostgreSQL" in str(await connection.scalar(text("SELECT version()")))
