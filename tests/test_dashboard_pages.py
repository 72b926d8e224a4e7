"""The dashboard pages over plain HTTP: who may frame them, what a request without a
valid token gets, the GraphQL documents they read through, and the SVG charts.
(What a person sees in a browser: `test_dashboard_browser.py`.)"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse, validate

from dashboard_extension.charts import (
    cohort_heatmap,
    delivery_times,
    flow_results,
    funnel_bars,
    rfm_grid,
    sparkline,
)
from dashboard_extension.formatting import humanize, money, when
from dashboard_extension.framing import configured_origins, content_security_policy, origin_of
from dashboard_extension.graph import DOCUMENTS
from dashboard_extension.pages import PAGES, VIEWS
from dashboard_extension.views.flows import describe_step, describe_trigger
from dashboard_extension.views.imports import duration, eta_seconds
from plugin.api.cost import MAX_COST, operation_cost
from plugin.api.ids import to_global_id
from plugin.api.schema import schema
from tests.api import ALL_PERMISSIONS, dashboard_headers, expired_headers, seed_customer
from tests.conftest import RunningApp, eventually
from tests.simulator import SaleorSimulator

HERE = Path(__file__).resolve().parents[1] / "dashboard_extension"


def _ancestors(response: httpx.Response) -> str:
    policy = response.headers["content-security-policy"]
    found = re.search(r"frame-ancestors ([^;]+)", policy)
    assert found is not None, policy
    return found.group(1).strip()


# -- documents -----------------------------------------------------------------------------


def test_every_document_is_valid_and_within_the_cost_limit() -> None:
    graphql_schema = schema._schema
    documents = sorted(DOCUMENTS.glob("*.graphql"))
    assert len(documents) == 16
    for path in documents:
        document = parse(path.read_text())
        assert validate(graphql_schema, document) == [], path.name
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        flags = {"withOrders": True, "withStats": True}
        cost = operation_cost(graphql_schema, operation, {}, flags)
        assert 0 < cost <= MAX_COST / 5, (path.name, cost)


def test_every_page_has_a_view_and_every_view_a_template() -> None:
    for page in PAGES:
        assert page.fragment in VIEWS, page.path
        assert page.path == "/dashboard/app" or page.path.startswith("/dashboard/app/")
    for name in VIEWS:
        assert (HERE / "templates" / "fragments" / f"{name}.html").exists(), name


def test_pages_load_nothing_from_elsewhere() -> None:
    """No CDN: every script, style, image and font is served by the app."""
    outside = re.compile(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", re.IGNORECASE)
    files = [
        *HERE.glob("templates/**/*.html"),
        *HERE.glob("static/*.js"),
        *HERE.glob("static/*.css"),
    ]
    assert len(files) >= 15
    for path in files:
        assert not outside.search(path.read_text()), path.name


# -- framing -------------------------------------------------------------------------------


def test_origin_and_configured_dashboard_origins() -> None:
    assert origin_of("https://Shop.Example.com/graphql/") == "https://shop.example.com"
    assert origin_of("javascript:alert(1)") is None
    assert origin_of("https://user@evil.example/graphql/") is None
    api = "https://api.shop.example/graphql/"
    setting = f"https://dash.all.example, {api}=https://dash.shop.example, https://x.example/graphql/=https://dash.x.example"
    assert configured_origins(setting, api) == [
        "https://dash.all.example",
        "https://dash.shop.example",
    ]
    assert configured_origins(setting, "https://other.example/graphql/") == [
        "https://dash.all.example"
    ]
    policy = content_security_policy([])
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy


async def test_shells_may_be_framed_by_the_shops_dashboard_only(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        for page in PAGES:
            response = await client.get(page.path, params={"saleorApiUrl": saleor.api_url})
            assert response.status_code == 200, page.path
            assert _ancestors(response) == saleor.origin, page.path
            assert "script-src 'self';" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "Connecting to the Saleor dashboard" in response.text
        stranger = await client.get(
            "/dashboard/app", params={"saleorApiUrl": "http://127.0.0.1:9/graphql/"}
        )
        assert _ancestors(stranger) == "'none'"
        assert "Open this page from the Saleor dashboard" in stranger.text
        bare = await client.get("/dashboard/app/extensions/customer-widget")
        assert _ancestors(bare) == "'none'"


async def test_dark_theme_from_the_query_string_is_rendered_at_once(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    params = {"saleorApiUrl": saleor.api_url, "theme": "dark"}
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        dark = await client.get("/dashboard/app/customers", params=params)
        odd = await client.get("/dashboard/app/customers", params={**params, "theme": "<x>"})
    assert '<html lang="en" data-theme="dark">' in dark.text
    assert '<html lang="en" data-theme="light">' in odd.text


# -- fragments -----------------------------------------------------------------------------


async def _fragment(
    app: RunningApp, name: str, headers: dict[str, str], **params: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as client:
        return await client.post(
            f"/dashboard/fragments/{name}", json={"params": params}, headers=headers
        )


async def test_fragments_refuse_missing_forged_and_expired_tokens(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pk = await seed_customer(db, installation_id, "ann@example.com", orders=2, first_name="Ann")
    crm_id = to_global_id("Customer", pk)
    good = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    shown = await _fragment(app_server, "customer_card", good, crmId=crm_id)
    assert shown.status_code == 200
    assert "Ann" in shown.text
    assert "ann@example.com" in shown.text

    forger = SaleorSimulator()  # another RSA key
    forged = {
        "authorization-bearer": forger.make_jwt(iss=saleor.api_url, app=saleor.app_id),
        "saleor-api-url": saleor.api_url,
    }
    for headers in ({}, forged, expired_headers(saleor)):
        refused = await _fragment(app_server, "customer_card", headers, crmId=crm_id)
        assert refused.status_code == 401
        assert "not accepted" in refused.text
        assert "ann@example.com" not in refused.text
        assert refused.headers["cache-control"] == "no-store"
    tokens = [good["authorization-bearer"], forged["authorization-bearer"]]
    assert caplog.records  # the app did log (its requests, the failed verifications)
    assert not any(token in caplog.text for token in tokens)


async def test_fragments_say_which_permission_is_missing(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    orders_only = dashboard_headers(saleor, user_permissions=["MANAGE_ORDERS"])
    refused = await _fragment(app_server, "customers", orders_only)
    assert refused.status_code == 403
    assert "MANAGE_USERS" in refused.text
    unknown = await _fragment(app_server, "nothing-here", orders_only)
    assert unknown.status_code == 404


async def test_card_of_a_customer_the_crm_does_not_know(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    answer = await _fragment(app_server, "customer_widget", headers, customerId="VXNlcjo5OTk=")
    assert answer.status_code == 200
    assert "Not in the CRM yet" in answer.text
    order = await _fragment(app_server, "order_widget", headers, orderId="T3JkZXI6bm9uZQ==")
    assert "has not received this order" in order.text
    nothing = await _fragment(app_server, "customer_widget", headers)
    assert nothing.status_code == 400


async def test_segment_preview_explains_a_bad_rule_in_place(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    bad = '{"all": [{"field": "city", "op": "gt", "value": 3}]}'
    answer = await _fragment(app_server, "segment_preview", headers, rules=bad)
    assert answer.status_code == 200
    assert "data-preview-error" in answer.text
    assert "city" in answer.text
    broken = await _fragment(app_server, "segment_preview", headers, rules="{not json")
    assert "Not JSON" in broken.text


# -- charts and formatting -----------------------------------------------------------------


def test_funnel_bars_are_proportional_and_say_what_is_not_measured() -> None:
    steps: list[dict[str, Any]] = [
        {"key": "started", "count": 200, "ofStarted": 1.0, "dropOff": None},
        {"key": "ordered", "count": 50, "ofStarted": 0.25, "dropOff": 150},
        {"key": "delivered", "count": None, "notMeasured": "No carrier data yet."},
    ]
    svg = str(funnel_bars(steps))
    widths = [float(w) for w in re.findall(r'width="([\d.]+)" height="20" class="bar"', svg)]
    assert widths == [330.0, 82.5]
    assert "50 · 25%" in svg
    assert "−150" in svg
    assert "not measured" in svg
    assert "No carrier data yet." in svg


def test_rfm_grid_has_25_cells_with_counts_and_revenue() -> None:
    cells = [
        {
            "recency": 5,
            "frequency": 5,
            "name": "Champions",
            "customers": 12,
            "revenue": {"amount": "4500.5"},
        },
        {"recency": 1, "frequency": 1, "name": "Lost", "customers": 3, "revenue": {"amount": "90"}},
    ]
    svg = str(rfm_grid(cells, "EUR", highlight=(1, 1)))
    assert svg.count('class="cell ') == 25
    assert "R5 F5 Champions: 12 customers, 4,500.50 EUR" in svg
    assert ">4.5k EUR<" in svg
    assert "cell-you" in svg
    assert 'class="cell heat-5" data-recency="5" data-frequency="5"' in svg


def test_cohort_heatmap_and_sparkline() -> None:
    cohorts = [
        {"month": "2026-09-01", "size": 10, "active": [10, 4, 2], "retention": [1.0, 0.4, 0.2]},
        {"month": "2026-10-01", "size": 5, "active": [5, 1], "retention": [1.0, 0.2]},
    ]
    heat = str(cohort_heatmap(cohorts))
    assert heat.count("<rect") == 5
    assert "2026-09, month 1: 4 of 10 (40%)" in heat
    assert str(cohort_heatmap([])).count("No first orders") == 1
    history = [{"day": f"2026-11-{d:02d}", "members": n} for d, n in ((1, 3), (2, 5), (3, 4))]
    spark = str(sparkline(history, "VIP"))
    assert "VIP: 3 on 2026-11-01, 4 on 2026-11-03" in spark
    assert spark.count("<polyline") == 1


def test_formatting_is_readable_without_javascript() -> None:
    assert str(money({"amount": "12.5", "currency": "EUR"})).endswith(">12.50 EUR</data>")
    assert 'datetime="2026-11-02T09:00:00Z"' in str(when("2026-11-02T09:00:00+00:00"))
    assert ">02 Nov 2026<" in str(when("2026-11-02T09:00:00Z"))
    assert humanize("FULFILLED") == "Fulfilled"
    assert humanize("order_fully_paid") == "Order fully paid"
    assert "—" in str(money(None))


# -- mailing and operations pages ------------------------------------------------------------


async def test_new_fragments_say_which_permission_is_missing(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    orders_only = dashboard_headers(saleor, user_permissions=["MANAGE_ORDERS"])
    for name in ("flows", "templates", "template_editor", "import_progress"):
        refused = await _fragment(app_server, name, orders_only)
        assert refused.status_code == 403, name
        assert "MANAGE_USERS" in refused.text, name
    users_only = dashboard_headers(saleor, user_permissions=["MANAGE_USERS"])
    deliveries = await _fragment(app_server, "deliveries", users_only)
    assert deliveries.status_code == 403
    assert "MANAGE_ORDERS" in deliveries.text
    everything = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)

    async def presets() -> bool:  # made by the app's own tick after the install
        listed = await _fragment(app_server, "flows", everything)
        return 'data-flow="win-back"' in listed.text

    await eventually(presets, timeout=30)
    stats = await _fragment(app_server, "flow_stats", users_only, flow="win-back")
    assert stats.status_code == 403
    assert "MANAGE_ORDERS" in stats.text
    # Reading is allowed without MANAGE_APPS; changing is not, and the page says so.
    flows = await _fragment(app_server, "flows", users_only)
    assert flows.status_code == 200
    assert "data-read-only" in flows.text
    assert "data-flow-toggle" not in flows.text


async def test_unknown_flow_and_template_and_bad_filters(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    flow = await _fragment(app_server, "flow_editor", headers, flow="nope")
    assert flow.status_code == 404
    assert "no flow" in flow.text
    template = await _fragment(app_server, "template_editor", headers, template="nope")
    assert template.status_code == 404
    stats = await _fragment(app_server, "flow_stats", headers, flow="nope")
    assert stats.status_code == 404
    # Filters a person could not have picked are ignored, not a failure.
    odd = await _fragment(app_server, "deliveries", headers, status="<x>", months="99")
    assert odd.status_code == 200
    assert "last 3 months" in odd.text
    none_yet = await _fragment(app_server, "import_progress", headers)
    assert none_yet.status_code == 200
    assert 'data-page="import"' in none_yet.text


async def test_template_preview_in_place_and_in_its_sandbox(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pk = await seed_customer(db, installation_id, "zoe@example.com", orders=1, first_name="Zoé")
    headers = dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS)
    html_part = '<p style="color:red">Hi {{ customer.first_name }}</p><script>alert(1)</script>'
    contents = json.dumps({"": {"subject": "Hi {{ customer.first_name }}", "html": html_part}})
    customer = to_global_id("Customer", pk)
    shown = await _fragment(
        app_server, "template_preview", headers, contents=contents, customerId=customer
    )
    assert shown.status_code == 200
    assert "Hi Zoé" in shown.text
    bad = await _fragment(
        app_server, "template_preview", headers, contents='{"": {"subject": "{% if %}"}}'
    )
    assert bad.status_code == 200
    assert "data-preview-error" in bad.text
    broken = await _fragment(app_server, "template_preview", headers, contents="{oops")
    assert "Not JSON" in broken.text

    form = {
        "token": headers["authorization-bearer"],
        "saleorApiUrl": saleor.api_url,
        "contents": contents,
        "customerId": customer,
    }
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        html = await client.post("/dashboard/preview/template", data=form)
        forged = await client.post(
            "/dashboard/preview/template", data={**form, "token": "not-a-jwt"}
        )
    assert html.status_code == 200
    assert '<p style="color:red">Hi Zoé</p>' in html.text
    policy = html.headers["content-security-policy"]
    assert policy.startswith("sandbox;")
    assert "script-src" not in policy  # default-src 'none': the mail's script never runs
    assert "style-src 'unsafe-inline'" in policy
    assert f"frame-ancestors 'self' {saleor.origin}" in policy
    assert html.headers["cache-control"] == "no-store"
    assert forged.status_code == 401
    assert "Zoé" not in forged.text
    assert form["token"] not in caplog.text


def test_flow_results_and_delivery_times_charts() -> None:
    steps: list[dict[str, Any]] = [
        {"stepIndex": 0, "variant": "A", "sent": 10, "opened": 5, "clicked": 2, "converted": 1},
        {"stepIndex": 0, "variant": "B", "sent": 5, "opened": 5, "clicked": 0, "converted": 0},
    ]
    chart = str(flow_results(steps))
    widths = re.findall(r'width="([\d.]+)" height="\d+" class="bar-sent"', chart)
    assert [float(w) for w in widths] == [460.0, 230.0]  # scaled to the most sent
    assert "Step 1 · B: opened 5 · 100%" in chart
    assert "Nothing sent" in str(flow_results([]))
    groups: list[dict[str, Any]] = [
        {"key": "cdek", "shipments": 4, "medianDays": 2.0, "p90Days": 4.0, "exceptionShare": 0.25},
        {"key": "manual", "shipments": 1, "medianDays": None, "p90Days": None, "exceptionShare": 0},
    ]
    times = str(delivery_times(groups, "By carrier"))
    assert 'data-median="2.00"' in times
    assert "25% exceptions" in times
    assert "chart-bad" in times  # a quarter of the parcels: shown as a problem
    assert "nothing delivered yet" in times
    assert "1 parcel ·" in times


def test_flows_and_import_in_words() -> None:
    assert describe_trigger({"type": "no_order_for_days", "days": 90}) == "No order for 90 days"
    assert describe_trigger(
        {"type": "no_order_for_days", "days": "typical", "default_days": 90}
    ) == ("No order for the shop's typical interval between orders (90 days until known)")
    assert (
        describe_trigger({"type": "segment_entered", "segment": "vip"}) == "Segment entered “vip”"
    )
    assert describe_step({"type": "wait", "days": 1, "hours": 2}) == "wait 1 d 2 h"
    assert describe_step({"type": "wait", "until": "10:00"}) == "wait until 10:00"
    variants = {"type": "send", "variants": [{"template": "a"}, {"template": "b"}]}
    assert describe_step(variants) == "A/B email: a | b"
    assert duration(0.2) == "less than a second"
    assert duration(42) == "42 s"
    assert duration(125) == "2 min 5 s"
    assert duration(4000) == "1 h 6 min"
    assert duration(None) == "unknown"
    now = datetime(2026, 11, 30, 12, 0, 10, tzinfo=UTC)
    run = {"startedAt": "2026-11-30T12:00:00Z", "processed": 10, "total": 30, "etaSeconds": 0.5}
    assert eta_seconds(run, now) == 20.0  # 1 a second since it started: Saleor is the bottleneck
    assert eta_seconds({**run, "etaSeconds": 60.0}, now) == 60.0
    assert eta_seconds({**run, "processed": 0, "etaSeconds": None}, now) is None
