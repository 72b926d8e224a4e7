"""Input the database cannot store is refused as INVALID_INPUT, never INTERNAL_ERROR
(issue 16, point 9): NUL characters and unpaired surrogates in any text, decimals that
are not finite or do not fit a money column."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from plugin.db.engine import Database
from tests.api import Answer, gql, seed_customer, staff_headers
from tests.conftest import RunningApp

SEARCH = "query($s: String) { customers(search: $s) { nodes { email } } }"
MONEY = "query($m: Decimal) { customers(filter: {minTotalSpent: $m}) { nodes { email } } }"
SEGMENT = "mutation($i: SegmentCreateInput!) { segmentCreate(input: $i) { slug } }"


async def ascii_gql(
    app: RunningApp, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> Answer:
    """Posts JSON with `\\u` escapes, as a client may for an unpaired surrogate."""
    body = json.dumps({"query": query, "variables": variables})
    async with httpx.AsyncClient(base_url=app.base_url, timeout=60) as client:
        response = await client.post(
            "/graphql", content=body, headers={**headers, "content-type": "application/json"}
        )
    return Answer(response.status_code, response.json())


def refused(answer: Any, *words: str) -> str:
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["INVALID_INPUT"], answer.body
    message: str = answer.body["errors"][0]["message"]
    for word in words:
        assert word in message
    return message


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "x\ud800y"])
async def test_unstorable_text_in_search_is_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int, text: str
) -> None:
    headers = staff_headers(saleor)
    refused(await ascii_gql(app_server, SEARCH, {"s": text}, headers), "NUL")
    # The same in a literal: the escape is a NUL once parsed.
    literal = '{ customers(search: "a\\u0000b") { nodes { email } } }'
    refused(await gql(app_server, literal, None, headers), "NUL")


async def test_unstorable_text_in_json_rules_is_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    rule = {"field": "city", "op": "eq", "value": "Paris\x00"}
    segment = {"slug": "nul", "name": "Nul", "rules": rule}
    answer = await gql(app_server, SEGMENT, {"i": segment}, staff_headers(saleor))
    refused(answer, "NUL")
    assert answer.body["errors"][0]["extensions"]["field"] == "i.rules.value"


async def test_a_cursor_carrying_a_nul_is_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await seed_customer(db, installation_id, "cursor@example.com")
    raw = json.dumps(["a\x00", 1]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    page = """query($a: String) { customers(after: $a, sortBy: {field: EMAIL}) {
      nodes { email } } }"""
    refused(await gql(app_server, page, {"a": cursor}, staff_headers(saleor)), "cursor")


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        ("1e400", "out of range"),
        ("-1e400", "out of range"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("sNaN", "not a finite number"),
        ("100000000000000", "out of range"),
        ("1e-400", "decimal places"),
    ],
)
async def test_money_filters_that_no_column_holds_are_invalid_input(
    app_server: RunningApp, saleor: Any, installation_id: int, amount: str, why: str
) -> None:
    headers = staff_headers(saleor)
    refused(await gql(app_server, MONEY, {"m": amount}, headers), why)
    literal = f'{{ customers(filter: {{minTotalSpent: "{amount}"}}) {{ nodes {{ email }} }} }}'
    refused(await gql(app_server, literal, None, headers), why)


async def test_ordinary_amounts_and_text_still_work(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await seed_customer(db, installation_id, "spender@example.com", orders=1)
    headers = staff_headers(saleor)
    for amount in ("0", "12.5", "99999999999999.99", 10):
        answer = await gql(app_server, MONEY, {"m": amount}, headers)
        assert answer.codes == [], answer.body
    found = await gql(app_server, SEARCH, {"s": "spender 😀"}, headers)
    assert found.codes == []
