"""The dashboard extension in a real browser, framed by a host page playing Saleor's
dashboard: what a staff member sees on a customer's page, an order's page and the app
page, in both themes, and what a forged token gets (an error, no data).

A shop is installed once for the module and Mia's and Bob's story is delivered to it as
signed webhooks, so every figure on screen went through the real fold.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Frame
from sqlalchemy import delete, func, select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.saleor.installations import get_by_api_url
from plugin.segments.fill import fill_waiting
from plugin.segments.models import Segment
from plugin.tracking.models import Shipment
from plugin.tracking.shipments import set_status
from plugin.tracking.statuses import Status
from tests.api import ALL_PERMISSIONS
from tests.conftest import RunningApp, eventually, register
from tests.dashboard_browser import Dashboard, HostServer, browser, dashboard_host, new_dashboard
from tests.saleor_schema import saleor_schema
from tests.simulator import FakeShop, SaleorSimulator
from tests.stories import Story, two_customers

__all__ = ["browser", "dashboard_host"]  # session fixtures, imported for pytest

WIDGET = "/dashboard/app/extensions/customer-widget"
CARD = "/dashboard/app/extensions/customer-card"
ORDER = "/dashboard/app/extensions/order-widget"


@dataclass
class Shop:
    saleor: SaleorSimulator
    story: Story

    def token(self, **claims: Any) -> str:
        claims.setdefault("user_permissions", ALL_PERMISSIONS)
        return str(self.saleor.make_jwt(**claims))


@pytest.fixture(scope="module")
async def shop(
    app_server: RunningApp, db: Database, dashboard_host: HostServer
) -> AsyncIterator[Shop]:
    saleor_schema()  # built once per run, slowly: not inside the register's time-out
    settings = app_server.app.state.ctx.settings
    with SaleorSimulator() as saleor, pytest.MonkeyPatch.context() as patch:
        # This shop's dashboard is served apart from its API, as self-hosted ones are.
        patch.setattr(settings, "dashboard_origins", f"{saleor.api_url}={dashboard_host.origin}")
        response = await register(app_server, saleor)
        assert response.status_code == 200, response.text
        story = two_customers(FakeShop(app_id=saleor.app_id))
        async with httpx.AsyncClient(base_url=app_server.base_url) as client:
            for event in story.events:
                answer = await saleor.adeliver(client, event)
                assert answer.status_code == 200, answer.text

        async with db.session() as session:
            installation = await get_by_api_url(session, saleor.api_url)
        assert installation is not None

        async def folded() -> bool:
            async with db.session() as session:
                done = await session.scalar(
                    select(func.count()).where(
                        InboxEvent.installation_id == installation.id,
                        InboxEvent.status == InboxStatus.DONE,
                    )
                )
            return done == len(story.events)

        try:
            await eventually(folded, timeout=120)  # the worker may be busy with others
        except AssertionError:
            async with db.session() as session:
                rows = (
                    await session.execute(
                        select(InboxEvent.status, InboxEvent.last_error, func.count())
                        .where(InboxEvent.installation_id == installation.id)
                        .group_by(InboxEvent.status, InboxEvent.last_error)
                    )
                ).all()
            raise AssertionError(f"not folded: {rows}") from None
        # A minute later the scheduled refresh has computed the built-in segments.
        await fill_waiting(db, installation.id, utcnow(), chunk_size=settings.segments_fill_chunk)
        yield Shop(saleor, story)


@pytest.fixture
async def dashboard(
    browser: Browser, app_server: RunningApp, shop: Shop, dashboard_host: HostServer
) -> AsyncIterator[Dashboard]:
    async for tab in new_dashboard(browser, app_server.base_url, shop.saleor, dashboard_host):
        yield tab


async def text(frame: Frame, selector: str) -> str:
    return str(await frame.locator(selector).first.inner_text())


async def background(frame: Frame) -> str:
    return str(await frame.evaluate("() => getComputedStyle(document.body).backgroundColor"))


async def test_customer_widget_shows_the_card_and_follows_the_theme(
    dashboard: Dashboard, shop: Shop
) -> None:
    token = shop.token()
    frame = await dashboard.open(WIDGET, token, width=380, customerId=shop.story.mia_user_id)
    assert "Mia" in await text(frame, "[data-name]")
    assert (await text(frame, "[data-figure=orders]")).strip() == "2"
    assert (await text(frame, "[data-figure=spent]")).startswith("$")  # USD, localised
    segments = await frame.locator("[data-segments] [data-segment]").all_inner_texts()
    assert segments, "Mia is in at least one segment"
    timeline = frame.locator("[data-timeline] li")
    assert await timeline.count() == 5
    # AppBridge: ready first, then the widget's height for the dashboard's column.
    kinds = [a["type"] for a in await dashboard.actions()]
    assert kinds[0] == "notifyReady"
    resize = await dashboard.actions("widgetResize")
    assert resize
    assert 300 < resize[-1]["payload"]["height"] < 900  # its content, not the frame's size
    assert all(token not in request.url for request in dashboard.requests)
    fragment_calls = [r for r in dashboard.requests if "/dashboard/fragments/" in r.url]
    assert fragment_calls[0].headers["authorization-bearer"] == token
    assert fragment_calls[0].headers["saleor-api-url"] == shop.saleor.api_url
    await dashboard.screenshot("customer-widget-light")
    light = await background(frame)

    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    assert await background(frame) != light
    assert await background(frame) == "rgb(23, 25, 28)"
    await dashboard.screenshot("customer-widget-dark")


async def test_popup_card_adds_a_note_and_a_tag_and_opens_orders(
    dashboard: Dashboard, shop: Shop
) -> None:
    frame = await dashboard.open(CARD, shop.token(), customerId=shop.story.mia_user_id)
    assert "Mia" in await text(frame, "[data-name]")
    assert await frame.locator("[data-orders] tbody tr").count() == 3
    assert await frame.locator("[data-score-factors] tbody tr").count() > 0

    await frame.fill("textarea[name=text]", "Prefers linen; call before shipping.")
    await frame.click("form[data-action=note] button")
    await frame.wait_for_selector("[data-notes] >> text=Prefers linen; call before shipping.")
    assert "staff@example.com" in await text(frame, "[data-notes] li")

    await frame.fill("input[name=tag]", "vip-lyon")
    await frame.click("form[data-action=tag] button")
    await frame.wait_for_selector("[data-tags] >> text=vip-lyon")
    notes = [a["payload"] for a in await dashboard.actions("notification")]
    assert {"status": "success", "title": "Saleor CRM", "text": "Note added"}.items() <= notes[
        0
    ].items()

    await frame.click(f"[data-orders] a[data-dashboard-path='/orders/{shop.story.first_order_id}']")
    await dashboard.page.wait_for_function(
        "() => window.__actions.some(a => a.type === 'redirect')"
    )
    redirect = (await dashboard.actions("redirect"))[-1]["payload"]
    assert redirect["to"] == f"/orders/{shop.story.first_order_id}"
    await dashboard.screenshot("customer-card-light")

    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("customer-card-dark")

    await frame.click("[data-popup-close]")
    await dashboard.page.wait_for_function(
        "() => window.__actions.some(a => a.type === 'popupClose')"
    )


async def test_refreshed_token_is_used_for_the_next_calls(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open(CARD, shop.token(), customerId=shop.story.mia_user_id)
    fresh = shop.token(email="other.staff@example.com")
    await dashboard.send("tokenRefresh", {"token": fresh})
    await frame.fill("textarea[name=text]", "Written after the token refresh.")
    await frame.click("form[data-action=note] button")
    await frame.wait_for_selector("[data-notes] >> text=Written after the token refresh.")
    assert "other.staff@example.com" in await text(frame, "[data-notes] li")
    writes = [r for r in dashboard.requests if r.url.endswith("/graphql")]
    assert writes[-1].headers["authorization-bearer"] == fresh


async def test_forged_token_shows_an_error_not_data(dashboard: Dashboard, shop: Shop) -> None:
    forger = SaleorSimulator()  # its own RSA key: signatures the shop never made
    forger.app_id = shop.saleor.app_id
    forged = forger.make_jwt(
        iss=shop.saleor.api_url, user_permissions=ALL_PERMISSIONS, app=shop.saleor.app_id
    )
    frame = await dashboard.open(WIDGET, forged, customerId=shop.story.mia_user_id)
    alert = await text(frame, "[role=alert]")
    assert "token was not accepted" in alert
    assert await frame.locator("[data-customer]").count() == 0
    assert "Mia" not in await frame.locator("body").inner_text()
    errors = await dashboard.actions("notification")
    assert errors
    assert errors[-1]["payload"]["status"] == "error"
    await dashboard.screenshot("forged-token-light")
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("forged-token-dark")


async def _carrier_reports_in_transit(db: Database, api_url: str, order_id: str) -> None:
    """The parcel of the order moves, through the tracking package itself (a status set
    as staff or a carrier would): it writes the buyer's `shipment_in_transit` entry."""
    async with unit_of_work(db) as session:
        installation = await get_by_api_url(session, api_url)
        assert installation is not None
        shipment = await session.scalar(  # other tests' shops have orders of that id too
            select(Shipment).where(
                Shipment.installation_id == installation.id, Shipment.order_saleor_id == order_id
            )
        )
        assert shipment is not None  # the fulfillment's tracking number made one
        await set_status(
            session, shipment, Status.IN_TRANSIT, utcnow(), carrier_text="arrived at the Lyon hub"
        )


async def test_order_widget_shows_the_buyer_and_the_parcel(
    dashboard: Dashboard, shop: Shop, db: Database
) -> None:
    await _carrier_reports_in_transit(db, shop.saleor.api_url, shop.story.first_order_id)
    frame = await dashboard.open(ORDER, shop.token(), width=380, orderId=shop.story.first_order_id)
    assert "Mia" in await text(frame, "[data-name]")
    shipments = await text(frame, "[data-shipments]")
    assert "1Z999AA10123456785" in shipments
    assert "In transit" in shipments
    assert "arrived at the Lyon hub" in shipments
    await dashboard.screenshot("order-widget-light")
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("order-widget-dark")


async def test_overview_draws_kpis_funnel_cohorts_and_rfm(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open("/dashboard/app", shop.token(), theme="dark")
    assert await background(frame) == "rgb(23, 25, 28)"  # the query string's theme
    assert (await text(frame, "[data-kpi=customers]")).strip() == "2"
    assert await frame.locator("svg.funnel rect.bar").count() >= 1
    assert await frame.locator("svg.cohorts rect.cell").count() >= 1
    assert await frame.locator("svg.rfm rect.cell").count() == 25
    assert await frame.locator("[data-sources] tbody tr").count() >= 1
    await dashboard.screenshot("overview-dark")
    await dashboard.send("theme", {"theme": "light"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    await dashboard.screenshot("overview-light")


async def test_customers_search_and_segment_filter(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open("/dashboard/app/customers", shop.token())
    assert await frame.locator("[data-customers] tbody tr[data-customer]").count() == 2
    await dashboard.screenshot("customers-light")
    await frame.fill("input[name=search]", "mia")
    await frame.click("form[data-fragment-form] button")
    await frame.wait_for_function(
        "() => document.querySelectorAll('[data-customers] tr[data-customer]').length === 1"
    )
    assert "Mia" in await text(frame, "[data-customers] tbody")
    assert "token" not in frame.url
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("customers-dark")
    # A row opens the full card inside the app page, keeping the dashboard's context.
    await frame.click("[data-customers] tbody a")
    await frame.wait_for_selector("[data-notes]")
    assert "saleorApiUrl=" in dashboard.frame.url
    assert "theme=dark" in dashboard.frame.url


async def test_segment_builder_previews_saves_and_explains_members(
    dashboard: Dashboard, shop: Shop
) -> None:
    frame = await dashboard.open("/dashboard/app/segments/new", shop.token())
    await frame.wait_for_selector("[data-preview-count]")
    await frame.fill("input[name=name]", "Lyon shirts")
    await frame.fill("input[name=slug]", "lyon-shirts")
    await frame.select_option("[data-conditions] li select[name=field]", "orders_count")
    await frame.select_option("[data-conditions] li select[name=op]", "gte")
    await frame.fill("[data-conditions] li input[name=value]", "2")
    await frame.wait_for_function(
        "() => document.querySelector('[data-preview-count]')?.textContent === '1'"
    )
    assert "Mia" in await text(frame, "[data-preview-sample]")
    await dashboard.screenshot("segment-builder-light")
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("segment-builder-dark")
    await frame.fill("[data-conditions] li input[name=value]", "many")
    await frame.wait_for_selector("[data-preview-error]")
    await frame.fill("[data-conditions] li input[name=value]", "2")
    await frame.wait_for_selector("[data-preview-count]")

    await frame.click("form[data-segment-builder] button.primary")
    await frame.wait_for_url("**/dashboard/app/segments/members?**")
    members = dashboard.frame
    await members.wait_for_selector("[data-members] li[data-customer]")
    assert "Mia" in await text(members, "[data-members]")
    await members.click("[data-members] summary .why-toggle")
    why = await text(members, "[data-why]")
    assert "orders" in why
    assert "✓" in why
    assert "theme=dark" in members.url  # the builder's theme went along
    await dashboard.send("theme", {"theme": "light"})
    await members.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    await dashboard.screenshot("segment-members-light")

    await dashboard.send("theme", {"theme": "dark"})
    await members.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("segment-members-dark")


async def test_segment_list_has_sparklines(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open("/dashboard/app/segments", shop.token())
    rows = frame.locator("[data-segment-list] tbody tr[data-segment]")
    assert await rows.count() >= 5
    assert await frame.locator("[data-segment-list] svg.sparkline").count() == await rows.count()
    await dashboard.screenshot("segments-light")
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("segments-dark")


async def test_a_segment_being_computed_shows_its_progress(
    dashboard: Dashboard, shop: Shop, db: Database
) -> None:
    """Mid-way through a large shop's computation in chunks (progress columns as the job
    commits them): the list and the segment's page show the bar, the percentage and the
    time left, and keep polling."""
    async with unit_of_work(db) as session:
        installation = await get_by_api_url(session, shop.saleor.api_url)
        assert installation is not None
        segment = Segment(
            installation_id=installation.id,
            key="recomputing",
            name="Big repeat buyers",
            rule={"field": "paid_orders_count", "op": "gte", "value": 2},
            refreshed_at=None,
            recompute_started_at=utcnow() - timedelta(seconds=30),
            recompute_done=420_000,
            recompute_total=1_000_000,
        )
        session.add(segment)
    try:
        frame = await dashboard.open("/dashboard/app/segments", shop.token())
        row = frame.locator("[data-segment-list] tr[data-segment=recomputing]")
        assert await row.locator("progress[data-recompute-bar]").get_attribute("value") == "42.0"
        assert (await row.locator("[data-recompute-percent]").inner_text()).strip() == "42%"
        assert re.fullmatch(
            r"· about \d+ s left", (await row.locator("[data-recompute-eta]").inner_text()).strip()
        )
        assert await frame.locator("[data-page=segments][data-live=true]").count() == 1
        await dashboard.screenshot("segments-recomputing-light")
        await dashboard.send("theme", {"theme": "dark"})
        await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
        await dashboard.screenshot("segments-recomputing-dark")

        frame = await dashboard.open(
            "/dashboard/app/segments/members", shop.token(), segment="recomputing"
        )
        panel = frame.locator("[data-recomputing]")
        assert (await panel.locator("[data-recompute-percent]").inner_text()).strip() == "42%"
        assert "left" in await panel.locator("[data-recompute-eta]").inner_text()
        assert await frame.locator("[data-page=segment-members][data-live=true]").count() == 1
        await dashboard.screenshot("segment-recomputing-light")
        await dashboard.send("theme", {"theme": "dark"})
        await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
        await dashboard.screenshot("segment-recomputing-dark")
    finally:
        async with unit_of_work(db) as session:
            await session.execute(delete(Segment).where(Segment.id == segment.id))


async def test_api_tokens_are_created_once_and_revoked(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open("/dashboard/app/tokens", shop.token())
    await frame.fill("input[name=name]", "Reporting script")
    await frame.click("form[data-action=token-create] button")
    await frame.wait_for_selector("[data-secret]:not([hidden])")
    secret = await text(frame, "[data-secret-value]")
    assert secret.startswith("crm_")
    assert await frame.locator("[data-tokens] tbody tr[data-token]").count() == 1
    await dashboard.screenshot("tokens-light")
    await frame.click("[data-tokens] button[data-revoke]")  # arms it: no modal in a sandbox
    await frame.click("[data-tokens] button[data-revoke][data-armed]")
    await frame.wait_for_selector("[data-tokens] tr.revoked")
    assert all(secret not in request.url for request in dashboard.requests)
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    await dashboard.screenshot("tokens-dark")


async def test_locale_change_reformats_figures(dashboard: Dashboard, shop: Shop) -> None:
    frame = await dashboard.open(CARD, shop.token(), customerId=shop.story.mia_user_id)
    before = await text(frame, "[data-figure=spent]")
    await dashboard.send("localeChanged", {"locale": "de"})
    await frame.wait_for_function("() => document.documentElement.lang === 'de'")
    after = await text(frame, "[data-figure=spent]")
    assert after != before
    assert "," in after  # 164,00 € in German
