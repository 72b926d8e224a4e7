"""Multi-row `INSERT … ON CONFLICT DO NOTHING` for both dialects: a polling batch writes
its checkpoints and timeline entries in a few statements, not one per row."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import Base

# Rows per statement: well under SQLite's and asyncpg's 32,767 bound parameters.
CHUNK = 500


async def insert_ignore_many(
    session: AsyncSession,
    model: type[Base],
    rows: list[dict[str, Any]],
    *,
    conflict_columns: list[str],
) -> None:
    """Insert the rows (all with the same keys), skipping those already there."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Any = model.__table__
    for start in range(0, len(rows), CHUNK):
        statement = (
            insert(table)
            .values(rows[start : start + CHUNK])
            .on_conflict_do_nothing(index_elements=conflict_columns)
        )
        await session.execute(statement)
