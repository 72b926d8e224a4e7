"""The manifest Saleor fetches at install, and the GraphQL documents it and the app send."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
from graphql import (
    FieldNode,
    OperationDefinitionNode,
    parse,
    validate,
)

from plugin.saleor.events import webhook_specs
from plugin.saleor.manifest import build_manifest
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
    for path in documents:
        document = parse(path.read_text())
        errors = validate(schema, document)  # includes NoUnusedFragments
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
