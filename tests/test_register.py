"""`POST /api/register` exactly as Saleor calls it at install (PLATFORM.md §2)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
from plugin.profiles.models import Profile
from plugin.saleor.installations import get_by_api_url
from plugin.saleor.models import InstallationStatus
from plugin.settings import Settings
from tests.conftest import RunningApp, register


async def test_install_proves_token_and_stores_it_encrypted(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings
) -> None:
    token = saleor.new_app_token()
    response = await register(app_server, saleor, token)
    assert response.status_code == 200
    assert response.json() == {"success": True}

    async with db.session() as session:
        installation = await get_by_api_url(session, saleor.api_url)
    assert installation is not None
    assert installation.app_id == saleor.app_id
    assert installation.status is InstallationStatus.ACTIVE
    assert token not in installation.token_encrypted
    box = SecretBox(settings.secret_key.get_secret_value())
    assert box.decrypt(installation.token_encrypted) == token
    assert installation.jwks["keys"][0]["kty"] == "RSA"
    # The app asked Saleor who owns the token, with the token, and nothing else.
    assert saleor.jwks_fetches >= 1
    assert any(
        r["headers"].get("authorization") == f"Bearer {token}" for r in saleor.graphql_requests
    )
    assert saleor.invalid_queries == []


async def test_reinstall_replaces_token_and_keeps_data(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int, settings: Settings
) -> None:
    async with db.session() as session:
        session.add(Profile(installation_id=installation_id, email="kept@example.com"))
        await session.commit()
    new_token = saleor.new_app_token()
    response = await register(app_server, saleor, new_token)
    assert response.status_code == 200
    async with db.session() as session:
        installation = await get_by_api_url(session, saleor.api_url)
        assert installation is not None
        assert installation.id == installation_id
        box = SecretBox(settings.secret_key.get_secret_value())
        assert box.decrypt(installation.token_encrypted) == new_token
        profiles = await session.scalar(
            select(func.count()).where(Profile.installation_id == installation_id)
        )
    assert profiles == 1


async def _post(app: RunningApp, headers: dict[str, str], body: Any) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{app.base_url}/api/register", json=body, headers=headers)


async def test_refusals_say_why(app_server: RunningApp, saleor: Any, db: Database) -> None:
    headers = saleor.register_headers()
    no_url = {k: v for k, v in headers.items() if k.lower() != "saleor-api-url"}
    cases = [
        (no_url, {"auth_token": "x"}, 400, "MISSING_SALEOR_API_URL"),
        (headers, {}, 400, "MISSING_AUTH_TOKEN"),
        (headers, {"auth_token": "not-a-token-saleor-issued"}, 401, "UNKNOWN_APP_ID"),
        (
            {**headers, "Saleor-Api-Url": "https://evil.example.com/graphql/"},
            {"auth_token": "x"},
            403,
            "SALEOR_URL_PROHIBITED",
        ),
        ({**headers, "Saleor-Api-Url": "ftp://x/graphql/"}, {"auth_token": "x"}, 400, None),
    ]
    for case_headers, body, status, code in cases:
        response = await _post(app_server, case_headers, body)
        assert response.status_code == status, (code, response.text)
        error = response.json()
        assert error["success"] is False
        assert error["error"]["message"]
        if code:
            assert error["error"]["code"] == code
    async with db.session() as session:
        assert await get_by_api_url(session, saleor.api_url) is None


async def test_jwks_unavailable_refuses_install(
    app_server: RunningApp, saleor: Any, db: Database
) -> None:
    saleor.jwks_available = False
    # A simulator may get the port (so the API URL) of an earlier test's: compare with it.
    async with db.session() as session:
        before = await get_by_api_url(session, saleor.api_url)
    response = await register(app_server, saleor)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "JWKS_NOT_AVAILABLE"
    async with db.session() as session:
        after = await get_by_api_url(session, saleor.api_url)
    if before is None:
        assert after is None
    else:
        assert after is not None
        assert (after.id, after.installed_at) == (before.id, before.installed_at)


async def test_inactive_app_cannot_register(
    app_server: RunningApp, saleor: Any, db: Database
) -> None:
    saleor.app_active = False
    response = await register(app_server, saleor)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNKNOWN_APP_ID"


async def test_register_needs_post(app_server: RunningApp) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{app_server.base_url}/api/register")
    assert response.status_code == 405
