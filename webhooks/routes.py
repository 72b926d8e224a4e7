"""One endpoint per event family (`/api/webhooks/<family>`), as listed in the manifest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from plugin.saleor.events import webhook_specs
from webhooks.receiver import receive


def _endpoint(family: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await receive(request, family)

    endpoint.__name__ = f"webhook_{family}"
    return endpoint


def routes() -> list[Route]:
    return [
        Route(f"/api/webhooks/{spec.family}", _endpoint(spec.family), methods=["POST"])
        for spec in webhook_specs()
    ]
