"""PostgreSQL's fast path for the import's multi-row statements: new rows go in by binary
COPY (rows that may be on file already, the timeline's, after one look-up of their keys);
updates as one statement per batch whose rows travel as one array per column (`unnest`),
encoded by the driver.

`INSERT … SELECT * FROM unnest($1::int4[], $2::varchar[], …)` and `UPDATE … FROM
unnest(…)`: the statement text is the same for any number of rows (prepared once), and no
per-row parameter passes through SQLAlchemy's bind processing — a thousand orders are a
few dozen parameters, not forty thousand.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Enum
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import Base

_TYPES: dict[str, dict[str, str]] = {}
_SEQUENCES: dict[str, str] = {}  # table → its id sequence
_ENUMS: dict[str, frozenset[str]] = {}  # table → its enum columns
JSON_TYPES = frozenset({"json", "jsonb"})


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def column_types(session: AsyncSession, table: str) -> dict[str, str]:
    """Each column's PostgreSQL type name (`udt_name`), read once per process."""
    if table not in _TYPES:
        driver = await _driver(session)
        rows = await driver.fetch(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_name = $1 AND table_schema = current_schema()",
            table,
        )
        _TYPES[table] = {row["column_name"]: row["udt_name"] for row in rows}
    return _TYPES[table]


def _value(value: Any, udt: str) -> Any:
    if value is None:
        return None
    if udt in JSON_TYPES:
        # orjson: the same JSON text as json.dumps gives (bar spaces), several times faster.
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    if isinstance(value, enum.Enum):
        return value.name  # how SQLAlchemy stores a (non-native) Enum column
    return value


def _arrays(
    rows: Sequence[dict[str, Any]], columns: list[str], types: dict[str, str]
) -> list[list[Any]]:
    """One list per column, converted once per column kind (JSON as text, enums by name)."""
    arrays = []
    for c in columns:
        values = [row[c] for row in rows]
        sample = next((v for v in values if v is not None), None)
        if types[c] in JSON_TYPES or isinstance(sample, enum.Enum):
            values = [_value(v, types[c]) for v in values]
        arrays.append(values)
    return arrays


def _names(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _unnest(columns: list[str], types: dict[str, str], first: int = 1) -> str:
    """`unnest($1::t1[], …)`; JSON travels as text and is cast back when selected."""
    arrays = [
        f"${n}::{'text' if types[c] in JSON_TYPES else types[c]}[]"
        for n, c in enumerate(columns, start=first)
    ]
    return f"unnest({', '.join(arrays)})"


def _selected(columns: list[str], types: dict[str, str], source: str = "v") -> str:
    return ", ".join(
        f'{source}."{c}"::{types[c]}' if types[c] in JSON_TYPES else f'{source}."{c}"'
        for c in columns
    )


async def next_ids(session: AsyncSession, table: str, count: int) -> list[int]:
    """Ids taken from the table's sequence ahead of the INSERT, so rows and their
    children can be written without reading ids back in order."""
    if count == 0:
        return []
    driver = await _driver(session)
    if table not in _SEQUENCES:  # looked up once: per row it cost 5 µs of catalog work
        _SEQUENCES[table] = str(
            await driver.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
        )
    rows = await driver.fetch(
        "SELECT nextval($1::regclass) FROM generate_series(1, $2)", _SEQUENCES[table], count
    )
    return [int(row[0]) for row in rows]


async def insert(
    session: AsyncSession,
    table: str,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts_on: list[str] | None = None,
    ids: Sequence[int] | None = None,
) -> None:
    """`ids`: the rows' new ids, one per row (taken by `next_ids`), when the rows carry
    none."""
    if not rows:
        return
    types = await column_types(session, table)
    columns = list(rows[0])
    driver = await _driver(session)
    if ids is not None:
        if ignore_conflicts_on:
            raise ValueError("rows given new ids are new: there is no conflict to ignore")
        records = [
            (i, *record)
            for i, record in zip(ids, _records(table, rows, columns, types), strict=True)
        ]
        await driver.copy_records_to_table(table, records=records, columns=["id", *columns])
        return
    if ignore_conflicts_on:
        rows = await _not_on_file(driver, table, rows, ignore_conflicts_on, types)
        if not rows:
            return
    # Rows known to be new (checked under the shop's fold lock, which every writer of
    # these keys holds): binary COPY, the cheapest way in for PostgreSQL and for the
    # driver's encoding — several times cheaper than INSERT … ON CONFLICT DO NOTHING.
    records = _records(table, rows, columns, types)
    await driver.copy_records_to_table(table, records=records, columns=columns)


def _records(
    table: str, rows: Sequence[dict[str, Any]], columns: list[str], types: dict[str, str]
) -> list[tuple[Any, ...]]:
    """Each row as a tuple in `columns` order — one C-level `itemgetter` call per row
    instead of a subscript per value — with JSON as text and enums by name, column by
    column (the model says which columns hold enums, whatever the first rows hold)."""
    getter = itemgetter(*columns)
    records: list[tuple[Any, ...]] = (
        [(getter(row),) for row in rows] if len(columns) == 1 else list(map(getter, rows))
    )
    for n, name in enumerate(columns):
        if types[name] in JSON_TYPES or name in _enum_columns(table):
            records = [
                (*record[:n], _value(record[n], types[name]), *record[n + 1 :])
                for record in records
            ]
    return records


def _enum_columns(table: str) -> frozenset[str]:
    if table not in _ENUMS:
        model_table = Base.metadata.tables[table]
        _ENUMS[table] = frozenset(c.name for c in model_table.c if isinstance(c.type, Enum))
    return _ENUMS[table]


async def _not_on_file(
    driver: Any,
    table: str,
    rows: Sequence[dict[str, Any]],
    key: list[str],
    types: dict[str, str],
) -> list[dict[str, Any]]:
    """The rows whose `key` is neither on file nor taken by an earlier row of the list
    (what ON CONFLICT DO NOTHING would have inserted). One probe of the key's unique
    index per row."""
    sql = (
        f"SELECT {_names(key)} FROM {table} WHERE ({_names(key)}) IN "
        f"(SELECT * FROM {_unnest(key, types)})"
    )
    found = await driver.fetch(sql, *_arrays(rows, key, types))
    taken = {tuple(record) for record in found}
    fresh = []
    for row in rows:
        values = tuple(row[c] for c in key)
        if values not in taken:
            taken.add(values)
            fresh.append(row)
    return fresh


async def update(session: AsyncSession, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE … SET (every key but `id`) FROM unnest(…) WHERE id matches."""
    if not rows:
        return
    types = await column_types(session, table)
    columns = list(rows[0])
    assignments = [f'"{c}" = {_selected([c], types)}' for c in columns if c != "id"]
    if "updated_at" in types and "updated_at" not in columns:
        assignments.append("updated_at = now()")
    sql = (
        f"UPDATE {table} SET {', '.join(assignments)} "
        f"FROM {_unnest(columns, types)} AS v({_names(columns)}) WHERE {table}.id = v.id"
    )
    driver = await _driver(session)
    await driver.execute(sql, *_arrays(rows, columns, types))


async def fetch(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """Rows straight from the driver (no per-value result processing): JSON columns come
    decoded, timestamps aware, numerics as Decimal — what the models' types give."""
    driver = await _driver(session)
    rows: list[Any] = await driver.fetch(sql, *args)
    return rows


def decoded(value: Any) -> Any:
    """A JSON column's value whether or not the connection decodes JSON itself."""
    return json.loads(value) if isinstance(value, str) else value
