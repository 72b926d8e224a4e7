"""Multi-row statements for the import: hundreds of rows per INSERT, on both dialects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import Base, utcnow
from plugin.importer import pg_bulk

# PostgreSQL takes at most 32,767 parameters per statement, SQLite 32,766 (3.32+).
MAX_PARAMETERS = 30_000


def _chunks(rows: Sequence[dict[str, Any]]) -> list[Sequence[dict[str, Any]]]:
    width = max(1, len(rows[0]))
    size = max(1, MAX_PARAMETERS // width)
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def insert_rows(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    returning: str | None = None,
    ignore_conflicts_on: list[str] | None = None,
) -> list[Any]:
    """INSERT … VALUES (…), (…), … (every row with the same keys). `returning`: that
    column of each row, in the rows' order. `ignore_conflicts_on`: ON CONFLICT DO NOTHING
    (not with `returning`)."""
    if not rows:
        return []
    table: Any = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        return await _insert_postgresql(session, table.name, rows, returning, ignore_conflicts_on)
    found: list[Any] = []
    if ignore_conflicts_on is not None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement: Any = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=ignore_conflicts_on)
            .returning(table.c.id)
        )
    else:
        column = table.c[returning or "id"]
        statement = insert(table).returning(column, sort_by_parameter_order=True)
    # An executemany with RETURNING: SQLAlchemy compiles the statement once (cached) and
    # sends the rows as multi-row INSERTs of up to 1,000 rows ("insertmanyvalues"),
    # keeping the returned rows in the parameters' order.
    for chunk in _chunks(rows):
        result = await session.execute(statement, list(chunk))
        if returning is not None:
            found += [row[0] for row in result]
    return found


async def _insert_postgresql(
    session: AsyncSession,
    table: str,
    rows: Sequence[dict[str, Any]],
    returning: str | None,
    ignore_conflicts_on: list[str] | None,
) -> list[Any]:
    if returning is None:
        await pg_bulk.insert(session, table, rows, ignore_conflicts_on=ignore_conflicts_on)
        return []
    if returning != "id":
        raise ValueError("only new ids can be returned")
    ids = await pg_bulk.next_ids(session, table, len(rows))
    await pg_bulk.insert(session, table, rows, ids=ids)
    return list(ids)


async def delete_where_in(
    session: AsyncSession, model: type[Base], column: str, values: Sequence[Any]
) -> None:
    """DELETE … WHERE column IN (…), in chunks."""
    table: Any = model.__table__
    for i in range(0, len(values), MAX_PARAMETERS):
        chunk = values[i : i + MAX_PARAMETERS]
        await session.execute(delete(table).where(any_of(session, table.c[column], chunk)))


async def update_rows(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    """UPDATE … SET (every key but `id`) WHERE id = … as one executemany (same keys)."""
    if not rows:
        return
    table: Any = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        await pg_bulk.update(session, table.name, rows)
        return
    columns = [key for key in rows[0] if key != "id"]
    values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in columns}
    if "updated_at" in table.c and "updated_at" not in values:
        values["updated_at"] = utcnow()
    statement = update(table).where(table.c.id == bindparam("b_id")).values(values)
    await session.execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in rows])


def any_of(session: AsyncSession, column: Any, values: Sequence[Any]) -> Any:
    """`column IN (…)` for a page's worth of values. On PostgreSQL `IN (SELECT unnest($1))`
    with one array parameter: the statement text stays the same whatever the count (it is
    prepared once), and the planner joins (hash or index) instead of testing each row
    against a list of thousands — what `= ANY($1)` does in a generic plan."""
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=ARRAY(column.type))
        return column.in_(select(func.unnest(array)).scalar_subquery())
    return column.in_(list(values))


async def analyze(
    session: AsyncSession,
    models: Sequence[type[Base]],
    columns: Mapping[type[Base], Sequence[str]] | None = None,
) -> None:
    """Fresh planner statistics for tables an import just filled (PostgreSQL's autovacuum
    runs later, and a plan made for an empty table scans the full one). `columns`: only
    those of a table (its size is counted all the same), where only they are looked up."""
    if session.get_bind().dialect.name == "postgresql":
        targets = []
        for model in models:
            table: Any = model.__table__
            listed = (columns or {}).get(model)
            named = f" ({', '.join(listed)})" if listed else ""
            targets.append(f"{table.name}{named}")
        await session.execute(text(f"ANALYZE {', '.join(targets)}"))


async def relaxed_commit(session: AsyncSession) -> None:
    """This transaction's commit does not wait for the WAL flush (PostgreSQL). Safe for an
    import batch: its rows and its cursor are one transaction, so a crash loses both and
    the resumed run reads those pages again."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL synchronous_commit TO OFF"))


async def write_with_lines(
    session: AsyncSession,
    installation_id: int,
    parent: type[Base],
    line: type[Base],
    parent_key: str,
    new: tuple[list[dict[str, Any]], list[list[dict[str, Any]]]],
    replaced: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> None:
    """Orders or checkouts with their lines: the new ones inserted (their ids returned for
    their lines), the replaced ones updated with their lines swapped for the new snapshot's."""
    new_rows, new_lines = new
    ids = await insert_rows(session, parent, new_rows, returning="id")
    line_rows = [
        {"installation_id": installation_id, parent_key: pid, **fields}
        for pid, lines in zip(ids, new_lines, strict=True)
        for fields in lines
    ]
    await update_rows(session, parent, [row for row, _ in replaced])
    await delete_where_in(session, line, parent_key, [row["id"] for row, _ in replaced])
    line_rows += [
        {"installation_id": installation_id, parent_key: row["id"], **fields}
        for row, lines in replaced
        for fields in lines
    ]
    await insert_rows(session, line, line_rows)
