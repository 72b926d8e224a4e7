"""The app page's mailing and operations pages in a real browser, framed by the host page
playing Saleor's dashboard: flows (create, switch on, pause, delete), templates (live
preview in a sandboxed frame, test send to a real SMTP server), message stats (the chart
per A/B variant), deliveries (filters, chart, a manual parcel's status, which the order
widget then shows) and the import page, whose bar moves while a real import runs.

Each page is screenshotted in both themes (`var/screenshots/dashboard`, see README).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from playwright.async_api import Frame

from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Flow, FlowRun, Message, MessageStatus, RunStatus
from plugin.saleor.installations import get_by_api_url
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp, eventually
from tests.dashboard_browser import Dashboard, browser, dashboard_host
from tests.importing import shop_with_history
from tests.messaging_doubles import SmtpServer
from tests.test_dashboard_browser import ORDER, Shop, background, dashboard, shop, text

__all__ = ["browser", "dashboard", "dashboard_host", "shop"]  # fixtures, imported for pytest


async def dark(dashboard: Dashboard, frame: Frame) -> None:
    await dashboard.send("theme", {"theme": "dark"})
    await frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    assert await background(frame) == "rgb(23, 25, 28)"


async def rendered(dashboard: Dashboard, url_part: str) -> Frame:
    """The app frame after a navigation inside it, once its content is in. A minute, not
    Playwright's 30 s: on a two-core machine running both suites the save behind the
    navigation has taken longer."""
    await dashboard.frame.wait_for_url(f"**{url_part}**", timeout=60_000)
    frame = dashboard.frame
    await frame.wait_for_function(
        "() => document.getElementById('content')?.getAttribute('aria-busy') === 'false'"
    )
    return frame


async def installation_of(db: Database, shop: Shop) -> int:
    async with db.session() as session:
        installation = await get_by_api_url(session, shop.saleor.api_url)
    assert installation is not None
    return installation.id


async def test_flows_are_created_switched_on_paused_and_deleted(
    dashboard: Dashboard, shop: Shop
) -> None:
    frame = await dashboard.open("/dashboard/app/flows", shop.token())
    assert await frame.locator("nav a[aria-current=page]").inner_text() == "Flows"
    await frame.click("text=New flow")
    editor = await rendered(dashboard, "/dashboard/app/flows/new")
    await editor.fill("input[name=name]", "Thank-you note")
    await editor.fill("input[name=key]", "thank-you-note")
    await editor.fill("textarea[name=steps]", '[{"type": "wait", "until": "7pm"}]')
    await editor.click("form[data-flow-editor] button.primary")
    problem = await text(editor, "[data-form-problem] [role=alert]")
    assert "$.steps[0].until" in problem  # the API's path, shown where the person typed
    await editor.fill(
        "textarea[name=steps]",
        '[{"type": "wait", "hours": 2}, {"type": "send", "template": "thank-you"}]',
    )
    await dashboard.screenshot("flow-editor-light")
    await editor.click("form[data-flow-editor] button.primary")

    flows = await rendered(dashboard, "/dashboard/app/flows?")
    row = flows.locator("tr[data-flow=thank-you-note]")
    await row.wait_for()
    assert "Thank-you note" in await row.inner_text()
    assert await row.locator("[data-status]").inner_text() == "Off"
    assert "wait 2 h" in await row.inner_text()
    assert "send thank-you" in await row.inner_text()
    await row.locator("button[data-flow-toggle]").click()
    await flows.wait_for_selector("tr[data-flow=thank-you-note][data-enabled=on]")
    await dashboard.screenshot("flows-light")
    await dark(dashboard, flows)
    await dashboard.screenshot("flows-dark")

    row = flows.locator("tr[data-flow=thank-you-note]")
    await row.locator("button[data-flow-toggle]").click()  # pause it
    await flows.wait_for_selector("tr[data-flow=thank-you-note][data-enabled=off]")
    await row.locator("button[data-flow-delete]").click()  # arms it
    await flows.locator("tr[data-flow=thank-you-note] button[data-armed]").click()
    await flows.wait_for_selector("tr[data-flow=thank-you-note]", state="detached")
    notes = [a["payload"]["text"] for a in await dashboard.actions("notification")]
    assert {"Flow switched on", "Flow paused", "Flow deleted"} <= set(notes)

    await flows.click("a[href*='/dashboard/app/flows/edit']")
    again = await rendered(dashboard, "/dashboard/app/flows/edit")
    await again.wait_for_selector("[data-page=flow-editor]")
    await dashboard.screenshot("flow-editor-dark")


async def test_flows_page_without_configuration_permission_is_read_only(
    dashboard: Dashboard, shop: Shop
) -> None:
    frame = await dashboard.open(
        "/dashboard/app/flows", shop.token(user_permissions=["MANAGE_USERS"])
    )
    assert "MANAGE_APPS" in await text(frame, "[data-read-only]")
    assert await frame.locator("button[data-flow-toggle]").count() == 0
    refused = await dashboard.open(
        "/dashboard/app/deliveries", shop.token(user_permissions=["MANAGE_USERS"])
    )
    alert = await text(refused, "[role=alert]")
    assert "permission" in alert
    assert "MANAGE_ORDERS" in alert


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


async def _preview_html(dashboard: Dashboard) -> str:
    frame = dashboard.page.frame(name="template-preview-html")
    assert frame is not None
    return str(await frame.locator("body").inner_text())


async def test_template_editor_previews_live_and_sends_a_test(
    dashboard: Dashboard, shop: Shop, app_server: RunningApp, smtp: SmtpServer
) -> None:
    staff = staff_headers(shop.saleor)
    settings = (
        "mutation($i: MessagingSettingsInput!) { messagingSettingsUpdate(input: $i) { timezone } }"
    )
    saved = await gql(app_server, settings, {"i": {"smtpUrl": smtp.url}}, staff)
    assert saved.codes == []

    token = shop.token()
    frame = await dashboard.open("/dashboard/app/templates/new", token)
    await frame.wait_for_selector("[data-preview-subject]")
    await frame.fill("input[name=name]", "Thank you")
    await frame.fill("input[name=key]", "thank-you")
    await frame.fill("input[name=subject]", "Merci {{ customer.first_name }}!")
    mia = frame.locator("[data-preview-customer] option", has_text="Mia")
    await frame.select_option("[data-preview-customer]", await mia.get_attribute("value"))
    await frame.wait_for_function(
        "() => document.querySelector('[data-preview-subject]')?.textContent === 'Merci Mia!'"
    )

    async def html_names_mia() -> bool:
        try:
            return "Hello Mia" in await _preview_html(dashboard)
        except Exception:  # the frame is being replaced by the next post
            return False

    await _eventually(html_names_mia)
    posts = [r for r in dashboard.requests if r.url.endswith("/dashboard/preview/template")]
    assert posts
    assert posts[-1].method == "POST"
    assert all(token not in r.url for r in dashboard.requests)  # in the body, never a URL
    # The mail's HTML is in a sandboxed frame (no script, no same-origin access).
    assert await frame.locator("iframe[data-preview-frame]").get_attribute("sandbox") == ""
    await dashboard.screenshot("template-editor-light")

    await frame.fill("input[name=subject]", "Merci {% if %}")
    await frame.wait_for_selector("[data-preview-error]")
    assert "subject" in await text(frame, "[data-preview-error]")
    await frame.fill("input[name=subject]", "Merci {{ customer.first_name }}!")
    await frame.wait_for_selector("[data-preview-subject]")
    await frame.click("form[data-template-editor] button.primary")

    listing = await rendered(dashboard, "/dashboard/app/templates?")
    await listing.wait_for_selector("tr[data-template=thank-you]")
    assert "Thank you" in await text(listing, "tr[data-template=thank-you]")
    await dashboard.screenshot("templates-light")
    await dark(dashboard, listing)
    await dashboard.screenshot("templates-dark")

    await listing.click("tr[data-template=thank-you] a")
    editor = await rendered(dashboard, "/dashboard/app/templates/edit")
    await editor.wait_for_selector("[data-preview-subject]")
    mia = editor.locator("[data-preview-customer] option", has_text="Mia")
    await editor.select_option("[data-preview-customer]", await mia.get_attribute("value"))
    await editor.fill("form[data-action=template-test-send] input[name=to]", "me@example.com")
    await editor.click("form[data-action=template-test-send] button")
    await editor.wait_for_selector("[data-test-sent], [data-page=template-editor] [role=alert]")
    alerts = await editor.locator("[data-page=template-editor] [role=alert]").all_inner_texts()
    assert await editor.locator("[data-test-sent]").count() == 1, alerts
    (mail,) = smtp.inbox.to("me@example.com")
    assert mail["Subject"] == "[Test] Merci Mia!"
    await _eventually(html_names_mia)
    await dashboard.screenshot("template-editor-dark")


async def _eventually(probe: Any, timeout: float = 15.0) -> None:
    await eventually(probe, timeout=timeout, interval=0.2)


async def test_message_stats_draw_each_variant(
    dashboard: Dashboard, shop: Shop, db: Database
) -> None:
    installation_id = await installation_of(db, shop)
    now = utcnow()
    people = [
        await seed_customer(db, installation_id, f"stats{i}@example.com", first_name=f"S{i}")
        for i in range(4)
    ]
    async with unit_of_work(db) as session:
        flow = Flow(
            installation_id=installation_id,
            key="subject-test",
            name="Subject A/B test",
            trigger={"type": "order_paid"},
            steps=[{"type": "send", "variants": [{"template": "a"}, {"template": "b"}]}],
        )
        session.add(flow)
        await session.flush()
        for i, profile_id in enumerate(people):
            run = FlowRun(
                installation_id=installation_id,
                flow_id=flow.id,
                profile_id=profile_id,
                trigger_key=f"stats-{i}",
                status=RunStatus.COMPLETED,
                started_at=now - timedelta(days=2),
            )
            session.add(run)
            await session.flush()
            session.add(
                Message(
                    installation_id=installation_id,
                    idempotency_key=f"stats-{i}",
                    profile_id=profile_id,
                    flow_id=flow.id,
                    run_id=run.id,
                    step_index=0,
                    variant="A" if i < 2 else "B",
                    channel=Channel.EMAIL,
                    template_key="a" if i < 2 else "b",
                    status=MessageStatus.SENT,
                    subject="Hello",
                    sent_at=now - timedelta(days=2),
                    opened_at=now - timedelta(days=1) if i in (0, 1, 2) else None,
                    clicked_at=now - timedelta(days=1) if i == 0 else None,
                )
            )
        # Variant A's first customer buys the next day: a conversion.
        session.add(
            Order(
                installation_id=installation_id,
                saleor_id="stats-order-0",
                profile_id=people[0],
                status="UNFULFILLED",
                currency="EUR",
                total_gross=Decimal("40.00"),
                placed_at=now - timedelta(days=1),
                source_updated_at=now - timedelta(days=1),
            )
        )
    frame = await dashboard.open("/dashboard/app/messages", shop.token(), flow="subject-test")
    a = frame.locator("[data-flow-stats] tr[data-variant=A]")
    assert (await a.locator("[data-sent]").inner_text()).strip() == "2"
    assert (await a.locator("[data-opened]").inner_text()).strip() == "2"
    assert (await a.locator("[data-converted]").inner_text()).strip() == "1"
    assert "€40.00" in await a.inner_text()  # its revenue
    bars = frame.locator("svg.flow rect[data-measure]")
    assert await bars.count() == 8  # 2 variants × sent, opened, clicked, converted
    sent = frame.locator("svg.flow rect[data-measure=sent]")
    opened_b = frame.locator("svg.flow rect[data-measure=opened]").nth(1)
    assert await sent.nth(0).get_attribute("width") == await sent.nth(1).get_attribute("width")
    assert float(await opened_b.get_attribute("width") or 0) < float(
        await sent.nth(1).get_attribute("width") or 0
    )  # half of B's were opened
    assert "holds nobody out" in await text(frame, "[data-holdout]")
    await dashboard.screenshot("message-stats-light")
    await dark(dashboard, frame)
    await dashboard.screenshot("message-stats-dark")


async def _shipment_of(app_server: RunningApp, shop: Shop) -> dict[str, Any]:
    query = "query($o: String) { shipments(orderId: $o) { id trackingNumber carrier status } }"
    answer = await gql(
        app_server, query, {"o": shop.story.first_order_id}, staff_headers(shop.saleor)
    )
    (parcel,) = answer.data["shipments"]
    return dict(parcel)


async def test_deliveries_filter_and_set_a_manual_parcels_status(
    dashboard: Dashboard, shop: Shop, app_server: RunningApp
) -> None:
    parcel = await _shipment_of(app_server, shop)
    assert parcel["trackingNumber"] == "1Z999AA10123456785"
    assert parcel["carrier"] != "MANUAL"

    frame = await dashboard.open("/dashboard/app/deliveries", shop.token())
    row = frame.locator(f"tr[data-parcel='{parcel['id']}']")
    assert "1Z999AA10123456785" in await row.inner_text()
    assert await row.locator("form[data-action=shipment-status]").count() == 0  # tracked
    # Staff send this one by hand: they correct the carrier, then set its status.
    await row.locator("form[data-action=shipment-carrier] select").select_option("MANUAL")
    await row.locator("form[data-action=shipment-carrier] button").click()
    await frame.wait_for_selector(
        f"tr[data-parcel='{parcel['id']}'] form[data-action=shipment-status]"
    )
    row = frame.locator(f"tr[data-parcel='{parcel['id']}']")
    assert "Manual" in await row.locator("[data-parcel-carrier]").inner_text()
    assert (await _shipment_of(app_server, shop))["carrier"] == "MANUAL"
    assert await frame.locator("svg.deliveries").count() == 2
    await row.locator("select[name=status]").select_option("DELIVERED")
    await row.locator("input[name=text]").fill("Left with the neighbour at no. 12")
    await row.locator("form[data-action=shipment-status] button").click()
    await frame.wait_for_selector(f"tr[data-parcel='{parcel['id']}'][data-status=DELIVERED]")
    row = frame.locator(f"tr[data-parcel='{parcel['id']}']")
    assert "Delivered" in await row.locator("[data-parcel-status]").inner_text()
    assert "Left with the neighbour" in await row.inner_text()
    # The delivery chart now has a delivered parcel: a median bar.
    assert await frame.locator("svg.deliveries rect.bar-median").count() >= 1

    await frame.select_option("form[data-fragment-form] select[name=status]", "IN_TRANSIT")
    await frame.click("form[data-fragment-form] button")
    await frame.wait_for_function(
        "() => document.querySelector('[data-parcels] tbody')?.innerText.includes('No parcel')"
    )
    await frame.select_option("form[data-fragment-form] select[name=status]", "DELIVERED")
    await frame.click("form[data-fragment-form] button")
    await frame.wait_for_selector(f"tr[data-parcel='{parcel['id']}']")
    await dashboard.screenshot("deliveries-light")
    await dark(dashboard, frame)
    await dashboard.screenshot("deliveries-dark")

    # The order page's widget reads the same parcel: status, carrier and its words.
    widget = await dashboard.open(ORDER, shop.token(), width=380, orderId=shop.story.first_order_id)
    shipments = await text(widget, "[data-shipments]")
    assert "Delivered" in shipments
    assert "Manual" in shipments
    assert "Left with the neighbour at no. 12" in shipments


@pytest.fixture
async def slow_import(app_server: RunningApp) -> AsyncIterator[None]:
    """A page per object, two requests a second: a run long enough to watch it move."""
    settings = app_server.app.state.ctx.settings
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "import_page_size", 1)
        patch.setattr(settings, "import_requests_per_second", 3.0)
        yield


async def test_import_page_shows_a_live_progress_bar_and_failures(
    dashboard: Dashboard, shop: Shop, slow_import: None
) -> None:
    history = shop_with_history(customers=4, guest_orders=3)
    broken = next(iter(history.orders))
    history.orders[broken]["updatedAt"] = "soon"
    shop.saleor.shop = history

    frame = await dashboard.open("/dashboard/app/import", shop.token())
    button = frame.locator("button[data-import-start]")
    await button.click()
    await frame.wait_for_selector("[data-run-status=RUNNING] [data-import-eta]", timeout=30_000)
    seen: set[str] = set()

    async def midway() -> bool:
        shown = (await text(frame, "[data-import-percent]")).strip()
        seen.add(shown)
        value = re.fullmatch(r"(\d+)%", shown)
        return bool(value and 0 < int(value.group(1)) < 100)

    await _eventually(midway, timeout=60)
    assert await frame.locator("progress[data-import-bar]").get_attribute("value") is not None
    assert "left" in await text(frame, "[data-import-counts]")
    await dashboard.screenshot("import-light")

    await frame.wait_for_selector("[data-run-status=DONE]", timeout=120_000)
    assert (await text(frame, "[data-import-percent]")).strip() == "100%"
    assert len(seen) >= 2, seen  # it moved while the person watched, without a reload
    failures = await text(frame, "[data-import-failures]")
    assert broken in failures
    assert "soon" in failures
    await dark(dashboard, frame)
    await dashboard.screenshot("import-dark")
