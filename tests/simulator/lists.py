"""Saleor's top-level lists (`customers`, `orders`, `checkouts`) over a FakeShop, paged
the way Saleor pages them.

Relay paging as in Saleor's `saleor/graphql/core/connection.py`: `first` is required and
at most 100 ("Requesting 101 records on the `orders` connection exceeds the `first`
limit of 100 records."), the cursor is opaque and encodes the sort key of the last row
(so rows created meanwhile never shift a page), `pageInfo { hasNextPage endCursor }`,
and `totalCount` counts the whole filtered list.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError

MAX_FIRST = 100
JSON = dict[str, Any]
# list field → (the shop's dictionary, the field that orders it oldest first)
LISTS = {
    "customers": ("users", "dateJoined"),
    "orders": ("orders", "created"),
    "checkouts": ("checkouts", "created"),
}


def encode_cursor(key: list[str]) -> str:
    return base64.b64encode(json.dumps(key).encode()).decode()


def decode_cursor(cursor: str, field: str) -> list[str]:
    try:
        key = json.loads(base64.b64decode(cursor.encode()))
    except ValueError as exc:
        raise GraphQLError(f"Received cursor ({cursor}) is invalid.") from exc
    if not isinstance(key, list) or len(key) != 2:
        raise GraphQLError(f"Received cursor ({cursor}) is invalid.")
    return [str(part) for part in key]


def connection(rows: list[JSON], field: str, name: str, args: dict[str, Any]) -> JSON:
    first, after = args.get("first"), args.get("after")
    if first is None:
        raise GraphQLError(
            f"You must provide a `first` or `last` value to properly paginate the `{name}` "
            "connection."
        )
    if first < 0:
        raise GraphQLError(f"Argument `first` on connection `{name}` cannot be less than 0.")
    if first > MAX_FIRST:
        raise GraphQLError(
            f"Requesting {first} records on the `{name}` connection exceeds the `first` limit "
            f"of {MAX_FIRST} records."
        )
    ordered = sorted(rows, key=lambda row: (str(row[field]), str(row["id"])))
    if after:
        start = decode_cursor(after, field)
        ordered = [r for r in ordered if [str(r[field]), str(r["id"])] > start]
    page = ordered[:first]
    edges = [
        {"node": row, "cursor": encode_cursor([str(row[field]), str(row["id"])])} for row in page
    ]
    return {
        "totalCount": len(rows),
        "edges": edges,
        "pageInfo": {
            "hasNextPage": len(ordered) > first,
            "hasPreviousPage": bool(after),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _customer(shop: Any, user: JSON) -> bool:
    """Saleor's `User.objects.customers()`: not staff, or staff with an order."""
    if not user.get("isStaff"):
        return True
    return any((o.get("user") or {}).get("id") == user["id"] for o in shop.orders.values())


def lists(shop: Any) -> dict[str, Callable[..., JSON]]:
    """Root resolvers for the app token's queries; an empty shop has empty lists."""

    def resolver(name: str) -> Callable[..., JSON]:
        attribute, field = LISTS[name]

        def resolve(info: Any, **args: Any) -> JSON:
            rows = list(getattr(shop, attribute).values()) if shop is not None else []
            if name == "customers":
                rows = [user for user in rows if _customer(shop, user)]
            return connection(rows, field, name, args)

        return resolve

    return {name: resolver(name) for name in LISTS}
