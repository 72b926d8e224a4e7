"""The baseline: a bare Starlette endpoint that reads the body and answers 200."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return JSONResponse({"success": True})


app = Starlette(routes=[Route("/api/webhooks/order", receive, methods=["POST"])])
