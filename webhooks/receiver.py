"""The one path every webhook takes: size limit, headers, installation, signature, inbox.

Answers (Saleor retries 5xx and time-outs, never 4xx):
- 401 unknown installation or bad signature, 400 wrong event or malformed body,
  413 oversized body: nothing is stored;
- 503 when the database cannot store the event, or the signature names a key the app
  cannot fetch yet (Saleor rotated it; `plugin.saleor.keys`), so Saleor delivers it again;
- 200 once the event is committed to the inbox (also for a redelivered duplicate).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from plugin.context import AppContext
from plugin.inbox import service as inbox
from plugin.kit.after_commit import unit_of_work
from plugin.kit.bodies import BadContentLength, BodyTooLarge, InvalidJson, parse_json, read_body
from plugin.ops.logging import bind
from plugin.ops.metrics import WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED, one_of
from plugin.saleor.directory import KnownInstallation
from plugin.saleor.events import spec_for, webhook_specs
from plugin.saleor.installations import uninstall
from plugin.saleor.jws import SignatureError, verify_detached
from plugin.saleor.keys import KeysUnavailable
from plugin.saleor.payloads import PayloadError, parse_datetime, typename_to_event
from webhooks.errors import RejectReason, error_response

logger = logging.getLogger(__name__)


class Rejection(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


REJECT_REASONS = frozenset(RejectReason)


@cache
def known_events() -> frozenset[str]:
    """The `Saleor-Event` values the app subscribes to: the metric's closed set."""
    return frozenset(event for spec in webhook_specs() for event in spec.events)


async def _read_body(request: Request, limit: int) -> bytes:
    try:
        return await read_body(request, limit)
    except BodyTooLarge as exc:
        raise Rejection(413, "BODY_TOO_LARGE", exc.message) from None
    except BadContentLength as exc:
        raise Rejection(400, "BAD_REQUEST", exc.message) from None


def _header(request: Request, name: str) -> str:
    """Saleor sends `Saleor-X` and the deprecated `X-Saleor-X`; prefer the new one."""
    return request.headers.get(name) or request.headers.get(f"x-{name}") or ""


def _event_body(body: bytes) -> dict[str, Any]:
    try:
        payload = parse_json(body)  # after the signature: a deep signed body is 400, not 503
    except InvalidJson as exc:
        raise Rejection(400, "INVALID_JSON", exc.message) from exc
    if not isinstance(payload, dict):
        raise Rejection(400, "INVALID_PAYLOAD", "Body must be a JSON object.")
    data = payload.get("data")
    if isinstance(data, dict) and len(data) == 1 and "__typename" not in payload:
        # A filterable root field (`orderCreated(channels: …)`) wraps the event in `data`.
        (inner,) = data.values()
        if isinstance(inner, dict):
            return inner
    return payload


async def _verify(
    ctx: AppContext, installation: KnownInstallation, signature: str, body: bytes
) -> None:
    """Verify with Saleor's keys; a key the cached JWKS lacks is fetched (rotation)."""
    try:
        jwks = await ctx.signing_keys.for_token(installation, signature)
        verify_detached(signature, body, jwks)
    except KeysUnavailable as unavailable:
        raise Rejection(
            503,
            RejectReason.KEYS_UNAVAILABLE,
            unavailable.message,
            {"Retry-After": str(unavailable.retry_after)},
        ) from None
    except SignatureError as exc:
        raise Rejection(401, RejectReason.SIGNATURE_VERIFICATION_FAILED, str(exc)) from None


async def _accept(ctx: AppContext, request: Request, family: str) -> tuple[str, bool]:
    spec = spec_for(family)
    assert spec is not None
    event_type = _header(request, "saleor-event").lower()
    if event_type not in spec.events:
        raise Rejection(
            400, "WRONG_EVENT", f"This endpoint does not take {event_type or 'unnamed'!r} events."
        )
    bind(event=event_type)
    body = await _read_body(request, ctx.settings.max_webhook_body_bytes)
    api_url = _header(request, "saleor-api-url")
    signature = _header(request, "saleor-signature")
    if not api_url:
        raise Rejection(400, "MISSING_SALEOR_API_URL", "Missing Saleor-Api-Url header.")
    if not signature:
        raise Rejection(401, "MISSING_SIGNATURE", "Missing Saleor-Signature header.")

    installation = await ctx.installations.get(api_url)
    if installation is None or (not installation.active and family != "app"):
        raise Rejection(401, "NOT_REGISTERED", "This Saleor instance has not installed the app.")
    bind(installation_id=installation.id)
    await _verify(ctx, installation, signature, body)

    payload = _event_body(body)
    typename = payload.get("__typename")
    if not isinstance(typename, str) or typename_to_event(typename) != event_type:
        raise Rejection(
            400, "WRONG_EVENT", f"Saleor-Event {event_type!r} does not match the payload."
        )
    try:
        issued_at = parse_datetime(payload.get("issuedAt"))
    except PayloadError as exc:
        raise Rejection(400, "INVALID_PAYLOAD", str(exc)) from exc

    version = payload.get("version")
    stored = await inbox.store_now(
        ctx.db,
        installation_id=installation.id,
        event_type=event_type,
        body=body,
        issued_at=issued_at,
        saleor_version=version if isinstance(version, str) else None,
    )
    if event_type == "app_deleted" and not stored.duplicate:
        # Uninstalling takes effect now, not when the fold runs: later webhooks get 401.
        # The event counts as folded in the same commit (a crash before it leaves the
        # fold to do it), so a fold running after a quick re-install cannot undo that.
        async with unit_of_work(ctx.db) as session:
            removed = await uninstall(session, installation.id, payload)
            if stored.id is not None:
                await inbox.mark_folded(session, stored.id)
        if removed is not None:
            ctx.installations.remember(removed)
    return event_type, stored.duplicate


async def receive(request: Request, family: str) -> Response:
    ctx: AppContext = request.app.state.ctx
    # The header is unauthenticated: a label only from the closed set of known events.
    event_label = one_of(_header(request, "saleor-event").lower(), known_events())
    try:
        event_type, duplicate = await _accept(ctx, request, family)
    except Rejection as rejection:
        reason = one_of(rejection.code, REJECT_REASONS)
        WEBHOOKS_REJECTED.labels(event=event_label, reason=reason).inc()
        logger.info("webhook rejected: %s", rejection.message, extra={"code": rejection.code})
        return error_response(
            rejection.status, rejection.code, rejection.message, rejection.headers
        )
    except Exception:
        # Our own failure (e.g. the database is down): 5xx so that Saleor redelivers.
        WEBHOOKS_REJECTED.labels(event=event_label, reason=RejectReason.UNAVAILABLE).inc()
        logger.exception("webhook could not be stored")
        return error_response(503, "UNAVAILABLE", "The event could not be stored; retry later.")
    WEBHOOKS_RECEIVED.labels(event=event_type, duplicate=str(duplicate).lower()).inc()
    return JSONResponse({"success": True, "duplicate": duplicate})
