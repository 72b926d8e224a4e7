"""Saleor's lists read page by page with the app token: Relay paging, a request budget,
and patience with Saleor's transient answers.

Saleor caps a page at 100 objects (`first`), pages by opaque cursors (`after` ←
`pageInfo.endCursor` while `hasNextPage`) and reports `totalCount`, which gives the import
its percentage. A proxy in front of Saleor (Saleor Cloud) may answer 429 with
`Retry-After`, and a busy Saleor 502/503/504: those are waited out and retried; anything
else is an error the run records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from plugin.db.base import utcnow
from plugin.importer.items import Item
from plugin.importer.narrowing import (
    MAX_FIELDS_LEFT_OUT,
    PageErrors,
    describe,
    first_node_error,
    ids_only,
    node_error,
    without_fields,
)
from plugin.saleor.client import SaleorError, load_query

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
MAX_PAGE_SIZE = 100
CONNECT_ATTEMPTS = 3


@dataclass(frozen=True)
class Resource:
    """One of Saleor's lists: its query document and the field holding the connection."""

    name: str
    query: str
    field: str


RESOURCES: dict[str, Resource] = {
    # Customers first (names and consent), then carts, then orders, which convert carts.
    "customers": Resource("customers", "import_customers", "customers"),
    "checkouts": Resource("checkouts", "import_checkouts", "checkouts"),
    "orders": Resource("orders", "import_orders", "orders"),
}


@dataclass(frozen=True)
class Page:
    nodes: list[dict[str, Any]]
    end_cursor: str | None
    has_next: bool
    total: int | None
    # The nodes read ahead of their fold (plugin.importer.items.prepare), one per node.
    prepared: list[Item | None] | None = None
    # (object id, Saleor's message): objects read without a field Saleor could not give
    # (they are folded), and objects Saleor could not give at all (not in `nodes`).
    partial: tuple[tuple[str, str], ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()


def _object_id(node: Any) -> str:
    return str(node.get("id") or "?") if isinstance(node, dict) else "?"


class RateLimiter:
    """At most `per_second` starts per second (no bursts): Saleor serves the shop's own
    customers from the same workers, and an import must not crowd them out."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        delay = self._next - now
        self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def retry_after_seconds(value: str | None, default: float) -> float:
    """`Retry-After` is seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return default
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, (moment - utcnow()).total_seconds())


class SaleorPages:
    """Fetches one page of a list; waits out throttling and transient failures."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        saleor_api_url: str,
        token: str,
        *,
        requests_per_second: float,
        max_attempts: int = 6,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.saleor_api_url = saleor_api_url
        self.token = token
        self.limiter = RateLimiter(requests_per_second)
        self.max_attempts = max_attempts
        self._sleep = sleep
        self.requests = 0
        self.throttled = 0

    async def page(
        self, resource: Resource, after: str | None, first: int, document: str | None = None
    ) -> Page:
        """One page as Saleor gives it; `PageErrors` when Saleor's errors lost the list.
        Errors inside objects of a list that came (a nullable field nulled) are kept as
        those objects' `partial` reasons."""
        body = await self._post(
            document or load_query(resource.query),
            {"first": min(first, MAX_PAGE_SIZE), "after": after},
        )
        connection = (body.get("data") or {}).get(resource.field)
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        if not isinstance(connection, dict):
            raise PageErrors(resource.name, errors)
        info = connection.get("pageInfo") or {}
        edges = [e for e in connection.get("edges") or [] if isinstance(e, dict)]
        partial = []
        for error in errors:
            found = node_error(error, resource.field)
            if found is not None and found.index < len(edges):
                node = edges[found.index].get("node")
                partial.append((_object_id(node), describe(resource.name, found)))
        nodes = [e["node"] for e in edges]
        total = connection.get("totalCount")
        return Page(
            nodes=[n for n in nodes if isinstance(n, dict)],
            end_cursor=info.get("endCursor"),
            has_next=bool(info.get("hasNextPage")),
            total=int(total) if isinstance(total, int) else None,
            partial=tuple(partial),
        )

    async def read(self, resource: Resource, after: str | None, first: int) -> Page:
        """The next page after `after`, narrowed around what Saleor cannot give
        (plugin/importer/narrowing.py): it may hold fewer objects than asked for, and
        its cursor is right after the last object it handled."""
        try:
            return await self.page(resource, after, first)
        except PageErrors as failed:
            error = first_node_error(failed.errors, resource.field)
            if first > 1 and (error is None or error.index > 0):
                # The objects before the one that failed, or half the page when the
                # error does not say which object it was.
                size = error.index if error is not None and error.index < first else first // 2
                return await self.read(resource, after, size)
            return await self._alone(resource, after, failed)

    async def _alone(self, resource: Resource, after: str | None, failed: PageErrors) -> Page:
        """The one object after `after`: without each field Saleor fails on in turn,
        else only its id (to go on after it, reported as unreadable)."""
        document = load_query(resource.query)
        left_out: set[tuple[str, ...]] = set()
        reasons: list[str] = []
        error = first_node_error(failed.errors, resource.field)
        while error is not None and error.field and error.field not in left_out:
            if len(left_out) >= MAX_FIELDS_LEFT_OUT or error.field == ("id",):
                break  # an object without its id is no object to fold
            left_out.add(error.field)
            reasons.append(describe(resource.name, error))
            try:
                variant = without_fields(document, resource.field, frozenset(left_out))
            except ValueError:  # nothing left to ask for
                break
            try:
                page = await self.page(resource, after, 1, variant)
            except PageErrors as again:
                error = first_node_error(again.errors, resource.field)
                continue
            reason = "; ".join(reasons) + (
                " (imported without it)" if len(reasons) == 1 else " (imported without them)"
            )
            return replace(
                page, partial=tuple((_object_id(n), reason) for n in page.nodes) + page.partial
            )
        if error is not None and (not error.field or error.field not in left_out):
            reasons.append(describe(resource.name, error))
        if not reasons:
            reasons = [f"Saleor could not give this object: {failed.message}"]
        # A failure here too means the list itself fails: the run ends with the error.
        page = await self.page(resource, after, 1, ids_only(document, resource.field))
        return Page(
            nodes=[],
            end_cursor=page.end_cursor,
            has_next=page.has_next,
            total=page.total,
            unreadable=tuple((_object_id(n), "; ".join(reasons)) for n in page.nodes),
        )

    async def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        backoff = 1.0
        for attempt in range(1, self.max_attempts + 1):
            await self.limiter.wait()
            self.requests += 1
            try:
                response = await self.http.post(
                    self.saleor_api_url,
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            except httpx.HTTPError as exc:
                # Refused connections mean Saleor is down or gone (uninstalled, moved): a
                # few quick tries, then the run fails and waits to be resumed, instead of
                # holding a worker through minutes of back-off.
                refused = isinstance(exc, httpx.ConnectError)
                if attempt == self.max_attempts or (refused and attempt >= CONNECT_ATTEMPTS):
                    raise SaleorError("SALEOR_UNREACHABLE", f"cannot reach Saleor: {exc}") from exc
                await self._sleep(0.5 * attempt if refused else backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if response.status_code in RETRIED_STATUSES and attempt < self.max_attempts:
                self.throttled += response.status_code == 429
                wait = retry_after_seconds(response.headers.get("retry-after"), backoff)
                await self._sleep(min(wait, 300.0))
                backoff = min(backoff * 2, 60.0)
                continue
            if response.status_code != 200:
                raise SaleorError("SALEOR_ERROR", f"Saleor answered HTTP {response.status_code}")
            try:
                answer: dict[str, Any] = orjson.loads(response.content)
            except ValueError as exc:  # orjson.JSONDecodeError is one
                raise SaleorError("SALEOR_ERROR", "Saleor answered with invalid JSON") from exc
            if not isinstance(answer, dict):
                raise SaleorError("SALEOR_ERROR", "Saleor answered with JSON that is no object")
            return answer
        raise SaleorError("SALEOR_ERROR", "Saleor kept refusing")  # pragma: no cover
