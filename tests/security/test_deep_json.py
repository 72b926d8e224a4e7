"""Deeply nested JSON is bad input, never a 5xx (issue 16, point 7).

Nested arrays (100,000 in the report) used to raise RecursionError: a signed webhook got 503 (which
Saleor retries for ever), `/graphql` and `/api/register` a plain 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent
from plugin.kit.bodies import MAX_JSON_DEPTH, InvalidJson, nesting_depth, parse_json
from plugin.tracking.carriers.aftership import sign
from tests.api import gql, staff_headers
from tests.carrier_doubles import AfterShipDouble
from tests.conftest import RunningApp
from tests.test_tracking_webhooks import _setup

# 30,000 levels (60 KB) fit every route's limit and are 30 times the recursion limit.
DEEP = b"[" * 30_000 + b"]" * 30_000
DEEP_TEXT = DEEP.decode()


async def _post(app: RunningApp, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(app.base_url + path, content=body, headers=headers)


async def test_register_answers_400(app_server: RunningApp, saleor: Any) -> None:
    deep_token = b'{"auth_token": ' + DEEP + b"}"
    for body in (DEEP, deep_token):
        response = await _post(app_server, "/api/register", body, saleor.register_headers())
        assert response.status_code == 400, response.text
        assert "nests deeper" in response.json()["error"]["message"]


async def test_graphql_answers_400(app_server: RunningApp) -> None:
    deep_variables = b'{"query": "{ __typename }", "variables": {"a": ' + DEEP + b"}}"
    headers = {"content-type": "application/json"}
    for body in (DEEP, deep_variables):
        response = await _post(app_server, "/graphql", body, headers)
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert "nests deeper" in error["message"]


async def test_a_deep_cursor_is_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    cursor = base64.urlsafe_b64encode(b"[" + DEEP + b", 1]").decode()
    query = "query($a: String) { customers(first: 1, after: $a) { nodes { id } } }"
    answer = await gql(app_server, query, {"a": cursor}, staff_headers(saleor))
    assert answer.codes == ["INVALID_INPUT"]


async def _inbox_count(db: Database, installation_id: int) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(InboxEvent.installation_id == installation_id)
        )
    return int(count or 0)


async def test_webhook_checks_the_signature_first_then_answers_400(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    signed = saleor.webhook_headers("order_created", DEEP)
    unsigned = {k: v for k, v in signed.items() if "signature" not in k.lower()}
    forged = {
        **signed,
        "Saleor-Signature": saleor.webhook_headers("order_created", b"{}")["Saleor-Signature"],
    }
    assert (await _post(app_server, "/api/webhooks/order", DEEP, unsigned)).status_code == 401
    assert (await _post(app_server, "/api/webhooks/order", DEEP, forged)).status_code == 401
    response = await _post(app_server, "/api/webhooks/order", DEEP, signed)
    assert response.status_code == 400, response.text  # Saleor does not retry a 4xx
    assert response.json()["error"]["code"] == "INVALID_JSON"
    assert await _inbox_count(db, installation_id) == 0  # nothing left pending


async def test_dashboard_posts_answer_400(app_server: RunningApp) -> None:
    fragment = await _post(app_server, "/dashboard/fragments/overview", DEEP, {})
    assert fragment.status_code == 400
    form = urlencode({"saleorApiUrl": "", "token": "", "contents": DEEP_TEXT}).encode()
    preview = await _post(
        app_server,
        "/dashboard/preview/template",
        form,
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert preview.status_code == 400
    assert "not valid JSON" in preview.text


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


async def test_carrier_webhook_answers_4xx(
    app_server: RunningApp, db: Database, aftership: AfterShipDouble
) -> None:
    credentials = {"api_key": "as-key", "webhook_secret": "as-secret"}
    _, path = await _setup(db, "aftership", aftership.base_url, credentials, "DEEP000000001")
    forged = await _post(app_server, path, DEEP, {"aftership-hmac-sha256": "AAAA"})
    assert forged.status_code == 401  # its body is described in the log: no RecursionError
    signed = await _post(app_server, path, DEEP, {"aftership-hmac-sha256": sign("as-secret", DEEP)})
    assert signed.status_code == 400
    assert "not JSON" in signed.json()["error"]["message"]


def test_depth_is_measured_outside_strings() -> None:
    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth(b'["\\"[[[[", []]') == 2
    assert nesting_depth(b"1") == 0
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(nested) == json.loads(nested)
    with pytest.raises(InvalidJson, match="nests deeper"):
        parse_json(b"[" + nested + b"]")
    with pytest.raises(InvalidJson, match="nests deeper"):
        parse_json(DEEP_TEXT)
    with pytest.raises(InvalidJson, match="not valid JSON"):
        parse_json(b"{not json")
