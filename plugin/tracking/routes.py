"""`POST /api/tracking/webhooks/<key>`: a carrier's push for one shop's account.

401 bad signature, 404 unknown key, 400 not the carrier's webhook, 413 oversized, 503
when the database cannot store it (the carrier retries), 200 once stored (duplicates too).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin.context import AppContext
from plugin.kit.after_commit import unit_of_work
from plugin.kit.bodies import BadContentLength, BodyTooLarge, read_body
from plugin.tracking import accounts
from plugin.tracking import webhooks as carrier_webhooks
from plugin.tracking.carriers.base import BadSignature, WebhookRejected

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def receive(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    key = request.path_params["key"]
    try:
        body = await read_body(request, ctx.settings.max_webhook_body_bytes)
    except BodyTooLarge as exc:
        return _error(413, "BODY_TOO_LARGE", exc.message)
    except BadContentLength as exc:
        return _error(400, "BAD_REQUEST", exc.message)
    secrets_box = accounts.box(ctx.settings.secret_key.get_secret_value())
    try:
        async with ctx.db.session() as session:
            account = await carrier_webhooks.account_by_key(session, key)
            if account is not None:
                session.expunge(account)
    except Exception:
        logger.exception("carrier webhook: database unavailable")
        return _error(503, "UNAVAILABLE", "Try again later.")
    if account is None:
        return _error(404, "UNKNOWN_WEBHOOK", "No carrier account has this webhook URL.")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        events = carrier_webhooks.verified_events(account, headers, body, ctx.http, secrets_box)
    except WebhookRejected as exc:
        status = 401 if isinstance(exc, BadSignature) else 400
        logger.info("carrier webhook rejected (%s): %s", carrier_webhooks.describe(body), exc)
        return _error(status, "REJECTED", str(exc))
    try:
        async with unit_of_work(ctx.db) as session:
            stored = await carrier_webhooks.store(session, account, events, body)
    except Exception:
        logger.exception("carrier webhook: could not store")
        return _error(503, "UNAVAILABLE", "Try again later.")
    return JSONResponse({"ok": True, "stored": stored.stored, "duplicates": stored.duplicates})


def routes() -> list[Route]:
    return [Route("/api/tracking/webhooks/{key}", receive, methods=["POST"])]
