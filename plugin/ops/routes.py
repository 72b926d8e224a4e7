"""`GET /healthz` (database and broker) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin.context import AppContext
from plugin.inbox.service import backlog
from plugin.ops.metrics import INBOX_BACKLOG, REGISTRY


async def healthz(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    checks: dict[str, str] = {}
    try:
        async with ctx.db.session() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=5)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    broker_check = getattr(request.app.state, "broker_health", None)
    checks["broker"] = await asyncio.to_thread(broker_check) if broker_check else "ok"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


def _bearer_matches(authorization: str, expected: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    # compare_digest: how long the comparison takes says nothing about the token
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )


async def metrics(request: Request) -> Response:
    """Prometheus text; behind `METRICS_TOKEN` (bearer) when that is set."""
    ctx: AppContext = request.app.state.ctx
    expected = ctx.settings.metrics_token.get_secret_value()
    if expected and not _bearer_matches(request.headers.get("authorization", ""), expected):
        return Response(
            "Send Authorization: Bearer <METRICS_TOKEN>.\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    try:
        async with ctx.db.session() as session:
            for status, count in (await backlog(session)).items():
                INBOX_BACKLOG.labels(status=status).set(count)
    except Exception:  # metrics still answer when the database does not
        pass
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [Route("/healthz", healthz), Route("/metrics", metrics)]
