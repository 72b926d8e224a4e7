"""GraphiQL is served from the app itself: it works offline and under the page's own
policy, which lets nothing from another origin load (issue 16, point 9)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
from playwright.async_api import Browser, ConsoleMessage, Request

from tests.conftest import RunningApp
from tests.dashboard_browser import browser

__all__ = ["browser"]  # session fixture, imported for pytest

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


async def test_graphiql_page_references_only_the_apps_own_assets(
    app_server: RunningApp,
) -> None:
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        page = await client.get("/graphql")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'self'" in policy
        references = REFERENCE.findall(page.text)
        assert len(references) >= 4  # React, ReactDOM, GraphiQL's script and styles
        for reference in references:
            url = urlsplit(urljoin(app_server.base_url + "/graphql", reference))
            assert f"{url.scheme}://{url.netloc}" == app_server.base_url, reference
            asset = await client.get(url.path)
            assert asset.status_code == 200, reference
            assert len(asset.content) > 0
        assert "unpkg" not in page.text
        assert "jsdelivr" not in page.text


async def test_graphiql_renders_without_any_outside_request(
    app_server: RunningApp, browser: Browser
) -> None:
    context = await browser.new_context()
    requested: list[str] = []
    problems: list[str] = []

    def seen(request: Request) -> None:
        requested.append(request.url)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page = await context.new_page()
    page.on("request", seen)
    page.on("console", console)
    # Offline: anything but the app itself is refused by the browser.
    await context.route(
        re.compile(r"^(?!" + re.escape(app_server.base_url) + ").*"),
        lambda route: route.abort(),
    )
    try:
        await page.goto(app_server.base_url + "/graphql")
        # The editor is drawn, and the schema comes from the app (introspection).
        await page.wait_for_selector(".graphiql-container .graphiql-query-editor", timeout=60_000)
        await page.wait_for_function(
            "() => document.querySelector('.graphiql-container') !== null", timeout=60_000
        )
    finally:
        await context.close()
    outside = [u for u in requested if not u.startswith(app_server.base_url)]
    assert outside == []
    assert problems == [], problems
    assert any(u.endswith("/graphql/assets/vendor/graphiql.min.js") for u in requested)
