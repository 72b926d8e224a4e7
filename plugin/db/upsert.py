"""`INSERT … ON CONFLICT DO NOTHING` for both dialects, returning the new id (or None).

This closes the check-then-insert race when the same event arrives twice at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import Base


async def insert_ignore(
    session: AsyncSession,
    model: type[Base],
    values: dict[str, Any],
    *,
    conflict_columns: list[str],
) -> int | None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Any = model.__table__
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table.c.id)
    )
    result = await session.execute(statement)
    new_id = result.scalar_one_or_none()
    return int(new_id) if new_id is not None else None
