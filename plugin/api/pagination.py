"""Relay connections with opaque keyset cursors; a page holds at most 100 nodes.

A cursor is the sort value and the row id of the last node seen, so pages stay stable
while rows are added, and a deep page costs as much as the first one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, Literal, TypeVar

import strawberry
from sqlalchemy import ColumnElement, and_, literal, or_, tuple_

from plugin.api.errors import InvalidInput
from plugin.api.fields import field as api_field
from plugin.api.inputs import unstorable
from plugin.kit.bodies import parse_json

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

T = TypeVar("T")
ValueKind = Literal["datetime", "decimal", "int", "str"]


def page_size(first: int | None, default: int = DEFAULT_PAGE_SIZE) -> int:
    if first is None:
        return default
    if first < 0 or first > MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 0 and {MAX_PAGE_SIZE}.", field="first")
    return first


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @api_field("The nodes of this page, without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @api_field("How many nodes all pages hold (one more query).")
    async def total_count(self) -> int | None:
        return await self.count() if self.count is not None else None


def connection(
    nodes: Sequence[tuple[str, T]],
    *,
    limit: int,
    after: str | None,
    count: Callable[[], Awaitable[int]] | None = None,
) -> Connection[T]:
    """A page from up to `limit + 1` (cursor, node) pairs (the extra one says: more follow)."""
    page = list(nodes[:limit])
    edges = [Edge(cursor=cursor, node=node) for cursor, node in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(nodes) > limit,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def encode_cursor(value: Any, row_id: int) -> str:
    raw = json.dumps([_encode_value(value), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_value(raw: Any, kind: ValueKind) -> Any:
    if raw is None:
        return None
    if kind == "datetime":
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    if kind == "decimal":
        number = Decimal(str(raw))
        if not number.is_finite() or (number and number.adjusted() >= 18):
            raise ValueError("not a stored amount")
        return number
    if kind == "int":
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise ValueError("not an int")
        return raw
    if not isinstance(raw, str) or unstorable(raw):
        raise ValueError("not a stored string")
    return raw


def decode_cursor(cursor: str, kind: ValueKind) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, row_id = parse_json(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError("bad id")
        return _decode_value(value, kind), row_id
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor.", field="after") from None


@dataclass(frozen=True)
class SortKey:
    """Order by `column` (nulls last) then by `id`, both in the same direction."""

    column: Any
    id_column: Any
    kind: ValueKind
    descending: bool = True
    nullable: bool = True

    def order_by(self) -> list[Any]:
        if self.column is self.id_column:
            return [self.id_column.desc() if self.descending else self.id_column.asc()]
        column = self.column.desc() if self.descending else self.column.asc()
        ident = self.id_column.desc() if self.descending else self.id_column.asc()
        return [column.nulls_last(), ident]

    def after(self, cursor: str) -> ColumnElement[bool]:
        value, row_id = decode_cursor(cursor, self.kind)

        def beyond(column: Any, bound: Any) -> ColumnElement[bool]:
            result: ColumnElement[bool] = column < bound if self.descending else column > bound
            return result

        if self.column is self.id_column:
            return beyond(self.id_column, row_id)
        if value is None:
            return and_(self.column.is_(None), beyond(self.id_column, row_id))
        return or_(
            beyond(self.column, value),
            and_(self.column == value, beyond(self.id_column, row_id)),
            self.column.is_(None),
        )

    def parts(self, after: str | None) -> list[tuple[list[ColumnElement[bool]], list[Any]]]:
        """(conditions, order) of the statements that read a page, run in turn until it is
        full: each matches a plain `(tenant, column, id)` index scanned one way or the other.

        A nullable column is read in two parts, the rows with a value then those without
        (by id): "nulls last" in both directions without a NULLS LAST index, which SQLite
        cannot declare. The keyset bound is a row comparison, an index condition.
        """
        ident = self.id_column.desc() if self.descending else self.id_column.asc()
        if self.column is self.id_column:
            if after is None:
                return [([], [ident])]
            return [([self._beyond(self.id_column, decode_cursor(after, self.kind)[1])], [ident])]
        ordered = [self.column.desc() if self.descending else self.column.asc(), ident]
        value, row_id = decode_cursor(after, self.kind) if after is not None else (None, 0)
        if not self.nullable:
            if after is None:
                return [([], ordered)]
            if value is None:
                raise InvalidInput("Invalid cursor.", field="after")
            return [([self._row_beyond(value, row_id)], ordered)]
        parts: list[tuple[list[ColumnElement[bool]], list[Any]]] = []
        nulls: list[ColumnElement[bool]] = [self.column.is_(None)]
        if after is None or value is not None:
            valued: list[ColumnElement[bool]] = [self.column.is_not(None)]
            if after is not None:
                valued.append(self._row_beyond(value, row_id))
            parts.append((valued, ordered))
        else:
            nulls.append(self._beyond(self.id_column, row_id))
        parts.append((nulls, [ident]))
        return parts

    def _beyond(self, column: Any, bound: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = column < bound if self.descending else column > bound
        return result

    def _row_beyond(self, value: Any, row_id: int) -> ColumnElement[bool]:
        row = tuple_(self.column, self.id_column)
        bound = tuple_(literal(value, self.column.type), literal(row_id, self.id_column.type))
        result: ColumnElement[bool] = row < bound if self.descending else row > bound
        return result
