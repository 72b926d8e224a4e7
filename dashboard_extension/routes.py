"""Routes of the dashboard pages and the public pages linked from the manifest."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from plugin import __version__
from plugin.context import AppContext

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)


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


async def app_page(request: Request) -> Response:
    response = _render("app.html", request)
    # Only a Saleor dashboard may frame the page; its origin is not known before the
    # handshake, so framing is allowed for http(s) origins and the token check guards data.
    response.headers["Content-Security-Policy"] = "frame-ancestors https: http:"
    return response


def routes() -> list[Route]:
    return [
        Route("/", home),
        Route("/privacy", privacy),
        Route("/support", support),
        Route("/dashboard/app", app_page),
    ]
