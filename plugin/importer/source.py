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
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from plugin.db.base import utcnow
from plugin.importer.items import Item
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

    async def page(self, resource: Resource, after: str | None, first: int) -> Page:
        body = await self._post(
            load_query(resource.query), {"first": min(first, MAX_PAGE_SIZE), "after": after}
        )
        connection = (body.get("data") or {}).get(resource.field)
        errors = body.get("errors") or []
        if not isinstance(connection, dict):
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            raise SaleorError("SALEOR_ERROR", f"Saleor returned no {resource.name}: {message}")
        info = connection.get("pageInfo") or {}
        nodes = [e["node"] for e in connection.get("edges") or [] if isinstance(e, dict)]
        total = connection.get("totalCount")
        return Page(
            nodes=[n for n in nodes if isinstance(n, dict)],
            end_cursor=info.get("endCursor"),
            has_next=bool(info.get("hasNextPage")),
            total=int(total) if isinstance(total, int) else None,
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
