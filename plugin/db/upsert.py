"""`INSERT … ON CONFLICT DO NOTHING` for both dialects, returning the new id (or None).

This closes the check-then-insert race when the same event arrives twice at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from plugin.db.base import Base


def _statement(
    dialect: str, model: type[Base], values: dict[str, Any], conflict_columns: list[str]
) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Any = model.__table__
    return (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table.c.id)
    )


async def insert_ignore(
    session: AsyncSession,
    model: type[Base],
    values: dict[str, Any],
    *,
    conflict_columns: list[str],
) -> int | None:
    statement = _statement(session.get_bind().dialect.name, model, values, conflict_columns)
    new_id = (await session.execute(statement)).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


async def insert_ignore_core(
    connection: AsyncConnection,
    model: type[Base],
    values: dict[str, Any],
    *,
    conflict_columns: list[str],
) -> int | None:
    """The same on a bare connection (e.g. one in autocommit), without an ORM session."""
    statement = _statement(connection.dialect.name, model, values, conflict_columns)
    new_id = (await connection.execute(statement)).scalar_one_or_none()
    return int(new_id) if new_id is not None else None
