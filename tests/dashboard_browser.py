"""A real headless Chromium playing the Saleor dashboard around the app's pages.

Debian's `chromium` is driven by Playwright through `executable_path` (never
`playwright install`: nothing is downloaded); `make test` installs the package when it is
missing (`make chromium`). The *host page* is what the dashboard would be: served by a
dashboard web server of its own (`DASHBOARD_ORIGINS` names it for the shop), it frames an
extension with the query string the dashboard builds (PLATFORM.md §5), answers
`notifyReady` with a `handshake` carrying a JWT signed by the simulator's key, answers
every action with `response`, and records what the app asked for, so tests can assert on it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Frame, Page, Request, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of every page in both themes (gitignored; linked from the README).
SCREENSHOTS = REPO / "var" / "screenshots" / "dashboard"
IFRAME_SANDBOX = "allow-same-origin allow-forms allow-scripts allow-downloads allow-popups"
SALEOR_VERSION = "3.23.28"
DASHBOARD_VERSION = "3.23.27"


def chromium_path() -> str:
    """Debian's Chromium; its absence is a broken set-up, not a reason to skip."""
    explicit = os.environ.get("CRM_CHROMIUM")
    for candidate in ([explicit] if explicit else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    pytest.fail("Chromium is missing: run `make chromium` (apt-get install -y chromium) first.")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


class HostServer:
    """The dashboard's own web server (self-hosted dashboards live apart from the API):
    serves host pages on loopback, so the browser sees a real origin and address space."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                body = pages.get(self.path.split("?", 1)[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def dashboard_host() -> Iterator[HostServer]:
    host = HostServer()
    yield host
    host.stop()


def host_html(src: str, app_origin: str, token: str, width: int, height: int) -> str:
    """The dashboard's side of AppBridge, as `AppFrame` does it (PLATFORM.md §5)."""
    config = json.dumps({"appOrigin": app_origin, "token": token})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Saleor Dashboard (test host)</title></head>
<body style="margin:0;background:#ddd">
<iframe id="app" title="app" sandbox="{IFRAME_SANDBOX}"
        style="border:0;width:{width}px;height:{height}px;display:block"></iframe>
<script>
const CONFIG = {config};
window.__actions = [];
window.__token = CONFIG.token;
const frame = document.getElementById("app");
function post(type, payload) {{
  frame.contentWindow.postMessage({{ type, payload }}, CONFIG.appOrigin);
}}
function handshake() {{
  post("handshake", {{ token: window.__token, version: 1,
    saleorVersion: "{SALEOR_VERSION}", dashboardVersion: "{DASHBOARD_VERSION}" }});
}}
window.__post = post;
window.addEventListener("message", (event) => {{
  if (event.origin !== CONFIG.appOrigin) return;
  const message = event.data;
  if (!message || !message.type || !message.payload || !message.payload.actionId) return;
  window.__actions.push(message);
  if (message.type === "notifyReady") handshake();
  if (message.type === "widgetResize") frame.style.height = message.payload.height + "px";
  post("response", {{ actionId: message.payload.actionId, ok: true }});
}});
frame.addEventListener("load", handshake);
frame.src = {json.dumps(src)};
</script></body></html>"""


@dataclass
class Dashboard:
    """One browser tab showing the host page around one extension."""

    page: Page
    app_url: str
    saleor: Any
    host: HostServer
    requests: list[Request] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @property
    def frame(self) -> Frame:
        for frame in self.page.frames:
            if frame.url.startswith(self.app_url):
                return frame
        raise AssertionError(f"no app frame among {[f.url for f in self.page.frames]}")

    async def open(
        self,
        path: str,
        token: str,
        *,
        theme: str = "light",
        width: int = 1100,
        height: int = 900,
        **params: str,
    ) -> Frame:
        """Load the host page framing `appUrl`-relative `path` with the dashboard's
        query string (`domain`, `saleorApiUrl`, `id`, `theme`, mount parameters)."""
        query = {
            "domain": self.saleor.domain,
            "saleorApiUrl": self.saleor.api_url,
            "id": self.saleor.app_id,
            "theme": theme,
            **params,
        }
        src = f"{self.app_url}{path}?{urlencode(query)}"
        host = host_html(src, self.app_url, token, width, height)

        path = f"/dashboard/apps/{len(self.host.pages)}"
        self.host.pages[path] = host.encode()
        await self.page.goto(self.host.origin + path)
        try:
            await self.page.wait_for_function(
                "() => window.__actions.some(a => a.type === 'notifyReady')", timeout=15_000
            )
        except PlaywrightTimeout:
            frames = [(f.url, await f.content()) for f in self.page.frames]
            raise AssertionError(f"no notifyReady; console: {self.console}; {frames}") from None
        frame = self.frame
        await frame.wait_for_function(
            "() => document.getElementById('content').getAttribute('aria-busy') === 'false'",
            timeout=20_000,
        )
        return frame

    async def actions(self, kind: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.page.evaluate("() => window.__actions")
        return [a for a in found if kind is None or a["type"] == kind]

    async def send(self, kind: str, payload: dict[str, Any]) -> None:
        """The dashboard posts `{type, payload}` to the app (theme, tokenRefresh, …)."""
        await self.page.evaluate("([t, p]) => window.__post(t, p)", [kind, payload])

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # The whole page, not the iframe's viewport: grow the frame to its content first.
        height = await self.frame.evaluate("() => document.body.scrollHeight")
        await self.page.evaluate(
            "(h) => { document.getElementById('app').style.height = h + 'px'; }", height
        )
        await self.frame.evaluate("() => window.scrollTo(0, 0)")
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def new_dashboard(
    browser: Browser, app_url: str, saleor: Any, host: HostServer
) -> AsyncIterator[Dashboard]:
    context = await browser.new_context(viewport={"width": 1140, "height": 940})
    page = await context.new_page()
    dashboard = Dashboard(page, app_url, saleor, host)

    def record(request: Request) -> None:
        dashboard.requests.append(request)

    page.on("request", record)
    page.on("console", lambda message: dashboard.console.append(message.text))
    page.on("pageerror", lambda error: dashboard.console.append(str(error)))
    try:
        yield dashboard
    finally:
        await context.close()
