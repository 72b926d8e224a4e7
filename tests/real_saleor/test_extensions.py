"""Every extension opened where the real Saleor sends the dashboard.

The URL is taken exactly as `apps { extensions { url mountName targetName } }` returns it.
Saleor itself joins a relative POPUP url to the app's `appUrl` (`urljoin` of its path);
WIDGET and APP_PAGE urls come back as the manifest wrote them, and the dashboard (3.23)
puts `appUrl` in front of a relative one (`AppWidgetExtensionItem`, and
`resolveAppCompleteUrlFromDashboardUrl` for app pages). The dashboard's query string is
added (PLATFORM.md §5), and the page is framed in headless Chromium by a host page that
answers the AppBridge handshake with the token the dashboard hands that frame: the
extension's `accessToken` for an extension, the app's `app(id) { accessToken }` for the
app's own page. Each must render the CRM's real data for what it is opened on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Frame, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.dashboard_browser import HostServer, host_html
from tests.real_saleor.conftest import Shop
from tests.real_saleor.figures import saleor_orders
from tests.real_saleor.saleor_api import dashboard_token, installed_apps
from tests.real_saleor.test_install_import import finished_import

MANIFEST = json.loads((Path(__file__).resolve().parents[2] / "manifest.json").read_text())
IDENTIFIERS = [extension["identifier"] for extension in MANIFEST["extensions"]]


def dashboard_src(url: str, app_url: str) -> str:
    """Where the dashboard points the iframe for an extension url Saleor returned."""
    return url if urlsplit(url).scheme else f"{app_url}{url}"


def mount_params(mount: str, customer_id: str, order_id: str) -> dict[str, str]:
    """The mount's parameters, as the dashboard adds them."""
    if mount.startswith("CUSTOMER_DETAILS"):
        return {"customerId": customer_id}
    if mount.startswith("ORDER_DETAILS"):
        return {"orderId": order_id}
    return {}


async def open_framed(
    page: Page, host: HostServer, shop: Shop, url: str, token: str, **params: str
) -> Frame:
    """The host page frames `url` with the dashboard's query string; returns the app's
    frame once it posted `notifyReady` and rendered (`#content` no longer busy)."""
    query = {
        "domain": urlsplit(shop.saleor.server.api_url).netloc,
        "saleorApiUrl": shop.saleor.server.api_url,
        "id": shop.app_id,
        "theme": "light",
        **params,
    }
    src = f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = f"/dashboard/apps/real-{len(host.pages)}"
    host.pages[path] = host_html(src, origin, token, 1100, 900).encode()
    await page.goto(host.origin + path)
    try:
        await page.wait_for_function(
            "() => window.__actions.some(a => a.type === 'notifyReady')", timeout=20_000
        )
    except PlaywrightTimeout:
        raise AssertionError(f"{src} never posted notifyReady") from None
    frame = next(f for f in page.frames if f.url.startswith(url.split("?")[0]))
    await frame.wait_for_function(
        "() => document.getElementById('content').getAttribute('aria-busy') === 'false'",
        timeout=30_000,
    )
    return frame


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1140, "height": 940})
    tab = await context.new_page()
    try:
        yield tab
    finally:
        await context.close()


async def subjects(shop: Shop) -> tuple[dict[str, Any], dict[str, Any]]:
    """A registered customer and an imported order to open the details mounts on."""
    await finished_import(shop)
    # A customer the live tests did not touch (they take the last e-mail for a checkout).
    data = await shop.saleor.staff(
        "{ customers(first: 1, sortBy: {field: EMAIL, direction: ASC}) {"
        " edges { node { id email firstName lastName } } } }"
    )
    customer = data["customers"]["edges"][0]["node"]
    crm_orders = await shop.crm(
        "query($email: String!) { customer(email: $email) { orders(first: 1) { edges { node {"
        " saleorId } } } } }",
        {"email": (await saleor_orders(shop.saleor))[0]["userEmail"]},
    )
    order_id = crm_orders["customer"]["orders"]["edges"][0]["node"]["saleorId"]
    return customer, {"id": order_id}


@pytest.mark.parametrize("identifier", IDENTIFIERS)
async def test_extension_opens_where_saleor_sends_the_dashboard(
    shop: Shop, page: Page, dashboard_host: HostServer, identifier: str
) -> None:
    (app,) = [a for a in await installed_apps(shop.saleor) if a["id"] == shop.app_id]
    (extension,) = [e for e in app["extensions"] if e["identifier"] == identifier]
    url, mount = dashboard_src(extension["url"], app["appUrl"]), extension["mountName"]
    customer, order = await subjects(shop)
    params = mount_params(mount, customer["id"], order["id"])

    async with httpx.AsyncClient() as client:  # the plain answer first: a 404 says it all
        answer = await client.get(url, params=params)
    assert answer.status_code == 200, f"{extension} at {url} answers {answer.status_code}"

    token = extension["accessToken"]
    assert token, "the staff member holds the extension's permissions: Saleor issues a token"
    frame = await open_framed(page, dashboard_host, shop, url, token, **params)
    if mount.startswith("CUSTOMER_DETAILS"):
        name = f"{customer['firstName']} {customer['lastName']}".strip() or customer["email"]
        assert name in await frame.locator("[data-name]").first.inner_text()
    elif mount.startswith("ORDER_DETAILS"):
        assert await frame.locator(f"[data-order='{order['id']}']").count() == 1
        assert (await frame.locator("[data-name]").first.inner_text()).strip()
    else:  # the app page on the customers' navigation
        rows = frame.locator("[data-customers] tbody tr[data-customer]")
        assert await rows.count() >= 20, "populatedb's customers in the CRM's list"


async def test_app_page_shows_the_overview(
    shop: Shop, page: Page, dashboard_host: HostServer
) -> None:
    """The app's own page (`appUrl`, what the dashboard opens from Apps)."""
    (app,) = [a for a in await installed_apps(shop.saleor) if a["id"] == shop.app_id]
    await finished_import(shop)
    token = await dashboard_token(shop.saleor, shop.app_id)
    frame = await open_framed(page, dashboard_host, shop, app["appUrl"], token)
    count = await shop.crm("{ customers(first: 1) { totalCount } }")
    shown = (await frame.locator("[data-kpi=customers]").inner_text()).strip()
    assert shown.replace(",", "") == str(count["customers"]["totalCount"])
