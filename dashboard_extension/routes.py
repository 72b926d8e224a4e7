"""Routes of the dashboard pages, their fragments, and the public pages of the manifest.

A dashboard page is two requests. The *shell* (`GET /dashboard/...`, no data, no token)
is what Saleor's iframe loads with its query string; it runs the AppBridge handshake.
With the token, the shell asks for its *fragment* (`POST /dashboard/fragments/<view>`,
token in app-sdk's `authorization-bearer` + `saleor-api-url` headers, never in a URL),
which the server renders from the GraphQL API: HTML with its SVG charts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from dashboard_extension.formatting import FILTERS
from dashboard_extension.framing import content_security_policy, dashboard_origins
from dashboard_extension.graph import open_api
from dashboard_extension.pages import PAGES, VIEWS, Page, navigation, saleor_stitched_path
from dashboard_extension.preview import template_html
from dashboard_extension.views import Call, Problem, link
from plugin import __version__
from plugin.context import AppContext
from plugin.kit.bodies import BadContentLength, BodyTooLarge, InvalidJson, parse_json, read_body

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)
templates.filters.update(FILTERS)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _render(name: str, request: Request, **values: object) -> HTMLResponse:
    ctx: AppContext = request.app.state.ctx
    html = templates.get_template(name).render(
        version=__version__, manifest_url=f"{ctx.settings.public_url}/api/manifest", **values
    )
    return HTMLResponse(html)


async def home(request: Request) -> Response:
    return _render("home.html", request)


async def privacy(request: Request) -> Response:
    return _render("privacy.html", request)


async def support(request: Request) -> Response:
    return _render("support.html", request)


def _protect(response: Response, origins: list[str]) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(origins)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def shell(page: Page) -> Callable[[Request], Awaitable[Response]]:
    async def view(request: Request) -> Response:
        ctx: AppContext = request.app.state.ctx
        params = dict(request.query_params)
        origins = await dashboard_origins(ctx, params.get("saleorApiUrl"))
        theme = "dark" if params.get("theme") == "dark" else "light"
        response = _render(
            "shell.html",
            request,
            page=page,
            nav=[(p, link(params, p.path)) for p in navigation()],
            theme=theme,
            origins_json=json.dumps(origins),
            installed=bool(origins),
        )
        return _protect(response, origins)

    return view


async def _params(request: Request, limit: int) -> dict[str, str]:
    try:
        body = await read_body(request, limit)
        payload = parse_json(body or b"{}")
    except BodyTooLarge:
        raise Problem(413, "Too much to send", "The request is too large.") from None
    except (BadContentLength, InvalidJson):
        raise Problem(400, "Bad request", "The body must be JSON.") from None
    raw = payload.get("params") if isinstance(payload, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}


async def fragment(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    view = VIEWS.get(request.path_params["name"])
    if view is None:
        return _problem(Problem(404, "No such page", "This page does not exist."))
    try:
        params = await _params(request, ctx.settings.max_dashboard_body_bytes)
    except Problem as problem:
        return _problem(problem)
    api = await open_api(ctx, request.headers)
    try:
        call = Call(api=api, params=params)
        rendered = await view(call)
        html = templates.get_template(rendered.template).render(
            link=call.link, params=params, **rendered.values
        )
        return _protect(HTMLResponse(html, status_code=rendered.status), [])
    except Problem as problem:
        return _problem(problem)
    except Exception:
        logger.exception("dashboard fragment %s failed", request.path_params["name"])
        return _problem(Problem(503, "Something went wrong", "Try again in a moment."))
    finally:
        await api.close()


def _problem(problem: Problem) -> Response:
    html = templates.get_template("fragments/problem.html").render(problem=problem)
    return _protect(HTMLResponse(html, status_code=problem.status), [])


def routes() -> list[Route]:
    pages = [Route(page.path, shell(page)) for page in PAGES]
    pages += [
        Route(stitched, shell(page))
        for page in PAGES
        if (stitched := saleor_stitched_path(page)) is not None
    ]
    return [
        Route("/", home),
        Route("/privacy", privacy),
        Route("/support", support),
        *pages,
        Route("/dashboard/fragments/{name}", fragment, methods=["POST"]),
        Route("/dashboard/preview/template", template_html, methods=["POST"]),
    ]
