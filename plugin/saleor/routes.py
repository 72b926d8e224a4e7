"""HTTP side of the app protocol: `GET /api/manifest` and `POST /api/register`."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin.analytics import rollups
from plugin.context import AppContext
from plugin.importer.service import start_import
from plugin.kit.after_commit import unit_of_work
from plugin.kit.bodies import BadContentLength, BodyTooLarge, InvalidJson, parse_json, read_body
from plugin.saleor import installations
from plugin.saleor.client import SaleorClient
from plugin.saleor.egress import EgressRefused, Unresolvable
from plugin.saleor.manifest import app_identifier, build_manifest
from plugin.segments.builtin import ensure_builtin_segments

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"code": code, "message": message}}, status_code=status
    )


async def manifest(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    return JSONResponse(build_manifest(ctx.settings.public_url))


async def register(request: Request) -> Response:
    """Saleor posts the app token here at install; the request itself is not signed, so the
    token is proven against the Saleor named by the header before anything is stored.
    What went wrong on the way to that Saleor is logged, never answered (no probe)."""
    ctx: AppContext = request.app.state.ctx
    api_url = request.headers.get("saleor-api-url", "").strip()
    if not api_url:
        return _error(400, "MISSING_SALEOR_API_URL", "Missing Saleor-Api-Url header.")
    try:
        saleor_domain = ctx.saleor_egress.parse(api_url).netloc.decode("ascii")
    except ValueError:
        return _error(400, "INVALID_SALEOR_API_URL", "Saleor-Api-Url is not an http(s) URL.")
    if not ctx.saleor_egress.allows(api_url):
        return _prohibited(api_url, "not allowed by ALLOWED_SALEOR_URLS")
    try:
        body = parse_json(await read_body(request, ctx.settings.max_register_body_bytes))
    except BodyTooLarge as exc:
        return _error(413, "BODY_TOO_LARGE", exc.message)
    except (BadContentLength, InvalidJson) as exc:
        return _error(400, "INVALID_JSON", exc.message)
    token = body.get("auth_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return _error(400, "MISSING_AUTH_TOKEN", "Missing auth token.")
    try:  # decided from the addresses, before any connection
        await ctx.saleor_egress.check(api_url)
    except EgressRefused as refused:
        return _prohibited(api_url, str(refused))
    except Unresolvable as unresolvable:
        logger.warning("register refused: %s", unresolvable, extra={"saleor_api_url": api_url})
        return _error(401, "UNKNOWN_APP_ID", installations.NOT_CONFIRMED)

    try:
        app = await installations.verify_app(
            SaleorClient(ctx.saleor_http, api_url, token), app_identifier()
        )
        # Asked before the transaction: no lock is held while Saleor answers.
        gone = await installations.gone_app_id(ctx.db, ctx.box, ctx.saleor_http, app)
        async with unit_of_work(ctx.db) as session:
            installation = await installations.save(
                session,
                app,
                ctx.box,
                saleor_domain=request.headers.get("saleor-domain", saleor_domain),
                saleor_version=request.headers.get("saleor-schema-version"),
                replaces_app_id=gone,
            )
            await ensure_builtin_segments(session, installation.id)
            if not await rollups.is_built(session, installation.id):
                # a new shop has nothing to roll up yet: from here on folds keep them current
                await rollups.rebuild_installation(session, installation.id)
            # The shop's history (or, after a re-install, what changed meanwhile).
            await start_import(session, installation.id, requested_by="install")
    except installations.RegisterError as exc:
        logger.warning("register refused: %s", exc.message, extra={"saleor_api_url": api_url})
        return _error(exc.status, exc.code, exc.message)
    except Exception:
        logger.exception("register could not store the installation")
        return _error(503, "UNAVAILABLE", "The app could not store the installation; retry.")
    ctx.installations.remember(installation)
    logger.info("installed", extra={"installation_id": installation.id, "saleor_api_url": api_url})
    return JSONResponse({"success": True})


def _prohibited(api_url: str, reason: str) -> JSONResponse:
    """One answer for every policy refusal; the reason goes to the log."""
    logger.warning("register refused: %s", reason, extra={"saleor_api_url": api_url})
    return _error(403, "SALEOR_URL_PROHIBITED", "This Saleor instance may not install the app.")


def routes() -> list[Route]:
    return [
        Route("/api/manifest", manifest, methods=["GET"]),
        Route("/api/register", register, methods=["POST"]),
    ]
