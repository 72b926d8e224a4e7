"""Every route that reads a body stops reading at its limit (issue 16, point 5).

A 300 MB body, chunked or with a declared length, gets 413 after at most the route's
limit plus what the sockets buffer: the client is measured, so a server that read the
whole body (and held it) fails. A body that lies about its length is cut too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from plugin.context import AppContext
from plugin.kit.bodies import BadContentLength, BodyTooLarge, read_body
from plugin.messaging.sending import links_for
from tests.conftest import RunningApp

BODY_BYTES = 300 * 1024 * 1024
CHUNK = b"{" * 65536
# What may be sent past a route's limit before its 413 arrives: the client's and the
# server's socket buffers and the server's read-ahead (a few MB on loopback).
SLACK = 24 * 1024 * 1024


class CountedBody:
    """A 300 MB body made of one reused chunk, counting what the client sent."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < BODY_BYTES:
            self.sent += len(CHUNK)
            yield CHUNK


def _preferences_path(app: RunningApp) -> str:
    ctx: AppContext = app.app.state.ctx
    url = links_for(ctx).preferences(1, 1)
    return url[len(ctx.settings.public_url) :]


ROUTES: dict[str, tuple[str, dict[str, str], str]] = {
    # name: (path, headers, the limit's setting)
    "register": (
        "/api/register",
        {"saleor-api-url": "http://127.0.0.1:9/graphql/"},
        "max_register_body_bytes",
    ),
    "webhook": ("/api/webhooks/order", {"saleor-event": "order_created"}, "max_webhook_body_bytes"),
    "graphql": ("/graphql", {"content-type": "application/json"}, "max_graphql_body_bytes"),
    "dashboard fragment": ("/dashboard/fragments/overview", {}, "max_dashboard_body_bytes"),
    "template preview": ("/dashboard/preview/template", {}, "max_dashboard_body_bytes"),
    "carrier webhook": ("/api/tracking/webhooks/no-such-key", {}, "max_webhook_body_bytes"),
    "preference form": ("", {}, "max_link_form_bytes"),
}


def _post(app: RunningApp, path: str, headers: dict[str, str]) -> tuple[int | None, int]:
    body = CountedBody()
    try:
        response = httpx.post(app.base_url + path, content=body, headers=headers, timeout=60)
    except httpx.TransportError:  # the server hung up first: it read no more
        return None, body.sent
    return response.status_code, body.sent


@pytest.mark.parametrize("name", list(ROUTES))
@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_oversized_body_is_cut_while_streaming(
    app_server: RunningApp, name: str, declared: bool
) -> None:
    path, headers, setting = ROUTES[name]
    path = path or _preferences_path(app_server)
    limit: int = getattr(app_server.app.state.ctx.settings, setting)
    if declared:
        headers = {**headers, "content-length": str(BODY_BYTES)}
    status, sent = _post(app_server, path, headers)
    assert status in (413, None), status
    if declared:  # refused on the header alone, before the body
        assert sent <= SLACK
    assert sent <= limit + SLACK, f"{name}: the server read {sent} bytes (limit {limit})"


def test_an_oversized_declared_body_is_drained_for_a_clean_413(app_server: RunningApp) -> None:
    """A few MB over the limit are read and dropped, so the client gets its 413 rather
    than a reset connection (Saleor retries a reset, never a 4xx)."""
    limit = app_server.app.state.ctx.settings.max_webhook_body_bytes
    body = b"x" * (limit + 1)
    response = httpx.post(
        app_server.base_url + "/api/webhooks/order",
        content=body,
        headers={"saleor-event": "order_created"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BODY_TOO_LARGE"


@pytest.mark.parametrize("path", ["/healthz", "/no/such/page"])
def test_a_body_nobody_reads_is_not_drained(app_server: RunningApp, path: str) -> None:
    status, sent = _post(app_server, path, {})
    assert status in (404, 405, None)
    assert sent <= SLACK


def _request(content_length: str | None, chunks: int) -> tuple[Request, list[int]]:
    """A request whose body has `chunks` chunks, whatever its header says."""
    headers = [] if content_length is None else [(b"content-length", content_length.encode())]
    given = [0]

    async def receive() -> Message:
        given[0] += 1
        return {"type": "http.request", "body": CHUNK, "more_body": given[0] < chunks}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive), given


async def test_a_lying_content_length_is_cut_at_the_limit() -> None:
    request, given = _request("10", chunks=10_000)
    with pytest.raises(BodyTooLarge):
        await read_body(request, 4 * len(CHUNK))
    assert given[0] == 5  # the fifth chunk passed the limit: nothing more was read


async def test_a_declared_length_over_the_limit_reads_nothing() -> None:
    request, given = _request(str(BODY_BYTES), chunks=10_000)
    with pytest.raises(BodyTooLarge):
        await read_body(request, 1024)
    assert given[0] == 0


async def test_a_body_within_the_limit_is_read_whole() -> None:
    request, _ = _request(None, chunks=3)
    assert await read_body(request, 3 * len(CHUNK)) == CHUNK * 3


async def test_a_malformed_content_length_is_refused() -> None:
    request, given = _request("12abc", chunks=3)
    with pytest.raises(BadContentLength):
        await read_body(request, 1024)
    assert given[0] == 0
