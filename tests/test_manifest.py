"""The manifest Saleor fetches at install, and the GraphQL documents it and the app send."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import httpx
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    parse,
    validate,
)

from plugin.saleor.documents import document
from plugin.saleor.events import webhook_specs
from plugin.saleor.manifest import build_manifest, extension_problems
from tests.conftest import RunningApp
from tests.saleor_schema import REPO, saleor_schema

SALEOR_322_REQUIRED = ("id", "version", "name", "tokenTargetUrl")
CRM_EVENTS = {
    "CHECKOUT_CREATED",
    "CHECKOUT_UPDATED",
    "CHECKOUT_FULLY_PAID",
    "CHECKOUT_METADATA_UPDATED",
    "ORDER_CREATED",
    "ORDER_UPDATED",
    "ORDER_CONFIRMED",
    "ORDER_PAID",
    "ORDER_FULLY_PAID",
    "ORDER_CANCELLED",
    "ORDER_EXPIRED",
    "ORDER_FULFILLED",
    "ORDER_REFUNDED",
    "ORDER_FULLY_REFUNDED",
    "ORDER_METADATA_UPDATED",
    "FULFILLMENT_CREATED",
    "FULFILLMENT_APPROVED",
    "FULFILLMENT_CANCELED",
    "FULFILLMENT_TRACKING_NUMBER_UPDATED",
    "FULFILLMENT_METADATA_UPDATED",
    "CUSTOMER_CREATED",
    "CUSTOMER_UPDATED",
    "CUSTOMER_METADATA_UPDATED",
    "CUSTOMER_DELETED",
    "APP_DELETED",
}


def test_served_manifest_is_absolute_and_complete(app_server: RunningApp) -> None:
    response = httpx.get(f"{app_server.base_url}/api/manifest")
    assert response.status_code == 200
    manifest = response.json()
    base = app_server.base_url
    for key in SALEOR_322_REQUIRED + ("about", "author", "appUrl", "requiredSaleorVersion"):
        assert manifest.get(key), key
    assert set(manifest["permissions"]) == {"MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"}
    for key in ("appUrl", "tokenTargetUrl", "dataPrivacyUrl", "homepageUrl", "supportUrl"):
        assert manifest[key].startswith(base + "/"), key
        assert httpx.get(manifest[key]).status_code < 400 or key == "tokenTargetUrl"
    assert manifest["tokenTargetUrl"] == f"{base}/api/register"
    logo = httpx.get(manifest["brand"]["logo"]["default"])
    assert logo.status_code == 200
    assert logo.headers["content-type"] == "image/png"
    width, height = struct.unpack(">II", logo.content[16:24])
    assert logo.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert width == height >= 256


def test_webhooks_cover_every_event_once() -> None:
    manifest = build_manifest("https://crm.example.com")
    events = [e for w in manifest["webhooks"] for e in w["asyncEvents"]]
    assert sorted(events) == sorted(CRM_EVENTS)
    for webhook in manifest["webhooks"]:
        assert webhook["targetUrl"].startswith("https://crm.example.com/api/webhooks/")
        assert webhook["isActive"] is True
        assert len(webhook["identifier"]) <= 256
        assert "query" in webhook
        assert "subscription" in webhook["query"]


def test_manifest_async_events_match_the_documents() -> None:
    """`asyncEvents` must list exactly the events of the query's fragments."""
    manifest = build_manifest("https://crm.example.com")
    by_family = {s.family: s for s in webhook_specs()}
    for webhook in manifest["webhooks"]:
        family = webhook["targetUrl"].rsplit("/", 1)[1]
        assert webhook["asyncEvents"] == by_family[family].async_events


def test_every_document_validates_against_saleor_schema() -> None:
    schema = saleor_schema()
    # What the app sends to Saleor: webhook subscriptions and its own queries.
    documents = sorted(
        path
        for folder in ("subscriptions", "queries")
        for path in (REPO / "graphql" / folder).glob("*.graphql")
    )
    assert len(documents) >= 6
    fragments = sorted((REPO / "graphql" / "fragments").glob("*.graphql"))
    used = {name for path in documents for name in _fragment_names(document(path))}
    assert used == {path.stem for path in fragments}  # every shared fragment is used
    for path in documents:
        parsed = parse(document(path))  # with the shared fragments it spreads
        errors = validate(schema, parsed)  # includes NoUnusedFragments
        assert errors == [], f"{path.name}: {errors}"


def test_subscriptions_have_one_operation_and_one_root_field() -> None:
    for spec in webhook_specs():
        document = parse(spec.query)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        assert len(operations) == 1
        assert operations[0].operation.value == "subscription"
        roots = operations[0].selection_set.selections
        assert len(roots) == 1
        assert isinstance(roots[0], FieldNode)
        assert roots[0].name.value == "event"
        assert "__typename" in spec.query  # the receiver matches it to Saleor-Event


def test_extensions_follow_saleor_322_rules() -> None:
    manifest = build_manifest("https://crm.example.com")
    allowed = set(manifest["permissions"])
    for extension in manifest["extensions"]:
        assert set(extension.get("permissions", [])) <= allowed
        assert extension["url"].startswith("/") or extension["url"].startswith("https://")


def test_manifest_file_is_the_template() -> None:
    raw = Path(REPO / "manifest.json").read_text()
    assert '"tokenTargetUrl": "/api/register"' in raw


def test_vendored_saleor_schema_is_the_published_one() -> None:
    """The copy in the repository is byte for byte Saleor 3.23.28's schema."""
    import hashlib

    from tests.saleor_schema import SCHEMA_SHA256, VENDORED_SCHEMA, WORKSPACE_SCHEMA

    vendored = VENDORED_SCHEMA.read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == SCHEMA_SHA256
    if WORKSPACE_SCHEMA.exists():
        assert WORKSPACE_SCHEMA.read_bytes() == vendored


EXTENSION_MOUNTS = {
    "CUSTOMER_DETAILS_WIDGETS": ("WIDGET", "customer-widget"),
    "CUSTOMER_DETAILS_MORE_ACTIONS": ("POPUP", "customer-card"),
    "ORDER_DETAILS_WIDGETS": ("WIDGET", "order-widget"),
    "NAVIGATION_CUSTOMERS": ("APP_PAGE", "customers"),
}


def test_extensions_meet_the_dashboards_contract_on_322_and_323() -> None:
    manifest = build_manifest("https://crm.example.com")
    assert extension_problems(manifest) == []
    by_mount = {e["mount"]: e for e in manifest["extensions"]}
    assert set(by_mount) == set(EXTENSION_MOUNTS)
    for mount, (target, page) in EXTENSION_MOUNTS.items():
        extension = by_mount[mount]
        assert extension["target"] == target
        assert extension["url"].endswith("/" + page)
        if target == "APP_PAGE":  # the dashboard requires it relative
            assert extension["url"] == "/" + page
        else:  # absolute: Saleor and the dashboard take it as it is
            assert extension["url"] == f"{manifest['appUrl']}/extensions/{page}"
        if target == "WIDGET":
            assert extension["options"] == {"widgetTarget": {"method": "GET"}}


def test_extension_problems_name_what_saleor_would_refuse() -> None:
    manifest = build_manifest("https://crm.example.com")
    widget = dict(manifest["extensions"][0])
    broken = {
        **manifest,
        "extensions": [
            {**widget, "mount": "CUSTOMER_DETAILS_MORE_ACTIONS"},  # WIDGET off a widget mount
            {**widget, "identifier": "x", "permissions": ["MANAGE_APPS"]},
            {**widget, "identifier": "x", "target": "APP_PAGE", "url": "https://a.example/p"},
        ],
    }
    problems = extension_problems(broken)
    assert any("WIDGET goes on" in p for p in problems)
    assert any("permissions outside" in p for p in problems)
    assert any("APP_PAGE urls must be relative" in p for p in problems)
    assert any("repeated" in p for p in problems)
    without_app_url = {**manifest, "appUrl": None}
    assert any("needs appUrl" in p for p in extension_problems(without_app_url))


EXTENSION_PAGES = {
    "crm-customer-widget": ("widget", "customer_widget"),
    "crm-customer-card": ("popup", "customer_card"),
    "crm-order-widget": ("widget", "order_widget"),
    "crm-customers": ("app", "customers"),
}
APP_EXTENSIONS = """query { app { appUrl extensions {
  identifier url targetName mountName settings } } }"""


async def _open_extensions_as_saleor_returns_them(
    app_server: RunningApp, saleor: Any, manifest: dict[str, Any]
) -> list[str]:
    """Install `manifest` into the simulator, read `app { extensions { url } }` with the
    app token as Saleor answers it, open every extension where the dashboard would, and
    check the page: 200, the right kind and view, framable by the shop's dashboard."""
    from tests.simulator.apps import dashboard_opens

    token = saleor.new_app_token()
    saleor.install_manifest(manifest)
    answer = httpx.post(
        saleor.api_url,
        json={"query": APP_EXTENSIONS},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    app = answer["data"]["app"]
    opened = []
    query = {
        "domain": saleor.domain,
        "saleorApiUrl": saleor.api_url,
        "id": saleor.app_id,
        "theme": "light",
    }
    async with httpx.AsyncClient() as client:
        for extension in app["extensions"]:
            url = dashboard_opens(extension, app["appUrl"])
            opened.append(url)
            page = await client.get(url, params=query)
            assert page.status_code == 200, url
            kind, view = EXTENSION_PAGES[extension["identifier"]]
            assert f'data-kind="{kind}"' in page.text, url
            assert f'data-fragment="{view}"' in page.text, url
            assert f"frame-ancestors {saleor.origin}" in page.headers["content-security-policy"]
    assert len(opened) == len(EXTENSION_PAGES)
    return opened


async def test_every_extension_opens_where_saleor_sends_the_dashboard(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    manifest = httpx.get(f"{app_server.base_url}/api/manifest").json()
    opened = await _open_extensions_as_saleor_returns_them(app_server, saleor, manifest)
    base = app_server.base_url
    assert f"{base}/dashboard/app/extensions/customer-card" in opened
    assert f"{base}/dashboard/app/customers" in opened


async def test_relative_popup_of_an_earlier_install_still_opens(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    """A shop that installed the manifest with relative urls keeps them until it
    re-installs: Saleor sends its popup to `/dashboard/extensions/…` (appUrl's last
    segment replaced), which is served too."""
    import json

    manifest = httpx.get(f"{app_server.base_url}/api/manifest").json()
    template = json.loads((REPO / "manifest.json").read_text())
    manifest["extensions"] = template["extensions"]  # the urls as declared before
    opened = await _open_extensions_as_saleor_returns_them(app_server, saleor, manifest)
    assert f"{app_server.base_url}/dashboard/extensions/customer-card" in opened


def test_simulator_resolves_extension_urls_as_saleor_does() -> None:
    from tests.simulator.apps import extension_url

    app_url = "https://crm.example.com/dashboard/app"
    assert extension_url("popup", app_url, "/extensions/card") == (
        "https://crm.example.com/dashboard/extensions/card"
    )
    assert extension_url("popup", app_url + "/", "/extensions/card") == (
        "https://crm.example.com/dashboard/app/extensions/card"
    )
    for target in ("widget", "app_page", "new_tab"):
        assert extension_url(target, app_url, "/extensions/x") == "/extensions/x"
    assert extension_url("popup", None, "/x") == "/x"
    assert extension_url("popup", app_url, "https://a.example/x") == "https://a.example/x"


def _fragment_names(text: str) -> set[str]:
    return {d.name.value for d in parse(text).definitions if isinstance(d, FragmentDefinitionNode)}
