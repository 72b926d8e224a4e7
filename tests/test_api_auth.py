"""Who may call the API (PLATFORM.md §6): dashboard JWTs verified with the shop's JWKS,
developer tokens, and the request limits. Every refusal is a typed error, never a 500."""

from __future__ import annotations

import time
from typing import Any

import httpx

from plugin.db.engine import Database
from tests.api import ALL_PERMISSIONS, dashboard_headers, expired_headers, gql, staff_headers
from tests.conftest import RunningApp, register
from tests.simulator import SaleorSimulator, global_id

VIEWER = "{ viewer { email userId permissions isApiToken saleorApiUrl } }"


async def test_dashboard_token_in_either_header(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    token = saleor.make_jwt(user_permissions=["MANAGE_USERS"])
    for headers in (
        {"authorization-bearer": token, "saleor-api-url": saleor.api_url},
        {"Authorization": f"Bearer {token}", "saleor-api-url": saleor.api_url},
    ):
        answer = await gql(app_server, VIEWER, None, headers)
        assert answer.status == 200
        assert answer.data["viewer"] == {
            "email": "staff@example.com",
            "userId": global_id("User", 1),
            "permissions": ["MANAGE_USERS"],
            "isApiToken": False,
            "saleorApiUrl": saleor.api_url,
        }


async def test_bad_tokens_are_unauthenticated(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    now = int(time.time())
    cases: list[dict[str, str]] = [
        {},
        {"authorization-bearer": "not-a-jwt", "saleor-api-url": saleor.api_url},
        {"authorization-bearer": saleor.make_jwt()},  # no saleor-api-url
        expired_headers(saleor),
        dashboard_headers(saleor, exp=None),
        dashboard_headers(saleor, app="QXBwOjk5OQ=="),  # another app of the same Saleor
        dashboard_headers(saleor, iss="http://evil.example/graphql/"),
        dashboard_headers(saleor, user_permissions=None),
        {
            "authorization-bearer": saleor.make_jwt(),
            "saleor-api-url": "http://127.0.0.1:1/graphql/",  # not installed
        },
        {"Authorization": "Bearer crm_unknown", "saleor-api-url": saleor.api_url},
        dashboard_headers(saleor, iat=now - 10, exp=now - 1),
    ]
    for headers in cases:
        answer = await gql(app_server, VIEWER, None, headers)
        assert answer.status == 200, headers
        assert answer.data is None, headers
        assert answer.codes == ["UNAUTHENTICATED"], (headers, answer.body)
        assert "Traceback" not in str(answer.body)


async def test_foreign_shop_token_refetches_the_jwks_once(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    with SaleorSimulator() as other:
        forged = {"authorization-bearer": other.make_jwt(), "saleor-api-url": saleor.api_url}
        before = saleor.jwks_fetches
        first = await gql(app_server, VIEWER, None, forged)
        second = await gql(app_server, VIEWER, None, forged)
    assert first.codes == second.codes == ["UNAUTHENTICATED"]
    assert saleor.jwks_fetches == before + 1  # a flood of unknown keys is one refetch


async def test_rotated_key_is_fetched_and_kept(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    saleor.rotate_key()
    before = saleor.jwks_fetches
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.data["viewer"]["email"] == "staff@example.com", answer.body
    again = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert "errors" not in again.body
    assert saleor.jwks_fetches == before + 1


async def test_uninstalled_shop_is_refused(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    from plugin.kit.after_commit import unit_of_work
    from plugin.saleor.installations import mark_removed
    from plugin.saleor.models import Installation

    async with unit_of_work(db) as session:
        installation = await session.get(Installation, installation_id)
        assert installation is not None
        await mark_removed(session, installation)
    app_server.app.state.ctx.installations.forget(saleor.api_url)
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.codes == ["UNAUTHENTICATED"]


async def test_request_limits(app_server: RunningApp, saleor: Any, installation_id: int) -> None:
    headers = staff_headers(saleor)
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        huge = await client.post(
            "/graphql", json={"query": "{ viewer { email } }", "x": "a" * 300_000}, headers=headers
        )
        assert huge.status_code == 413
        assert huge.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        not_json = await client.post("/graphql", content=b"{nope", headers=headers)
        assert not_json.status_code == 400
        no_query = await client.post("/graphql", json={"variables": {}}, headers=headers)
        assert no_query.status_code == 400
        page = await client.get("/graphql")
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
    syntax = await gql(app_server, "{ viewer { ", None, headers)
    assert syntax.status == 200
    assert syntax.codes == ["INVALID_INPUT"]
    unknown = await gql(app_server, "{ nope }", None, headers)
    assert unknown.codes == ["INVALID_INPUT"]
    level = "segments { segment { members { nodes { "
    deep = "{ customers { nodes { " + level * 4 + "email" + " } } } }" * 4 + " } } }"
    too_deep = await gql(app_server, deep, None, headers)
    assert too_deep.codes == ["INVALID_INPUT"]
    assert "depth" in too_deep.body["errors"][0]["message"]


async def test_introspection_needs_no_token(app_server: RunningApp) -> None:
    answer = await gql(app_server, "{ __schema { queryType { name } } }")
    assert answer.data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_second_shop_registers_separately(app_server: RunningApp) -> None:
    with SaleorSimulator() as shop:
        assert (await register(app_server, shop)).status_code == 200
        answer = await gql(app_server, VIEWER, None, staff_headers(shop))
    assert answer.data["viewer"]["saleorApiUrl"] == shop.api_url
    assert answer.data["viewer"]["permissions"] == sorted(ALL_PERMISSIONS)
