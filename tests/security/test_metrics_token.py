"""Issue 16 §9: `/metrics` can be closed with a bearer token (`METRICS_TOKEN`)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from plugin.context import AppContext
from tests.conftest import RunningApp


async def _scrape(app: RunningApp, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{app.base_url}/metrics", headers=headers or {})


async def test_metrics_need_the_token_when_one_is_set(
    app_server: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx: AppContext = app_server.app.state.ctx
    token = "s3cret-metrics-token"
    closed = ctx.settings.model_copy(update={"metrics_token": SecretStr(token)})
    monkeypatch.setattr(ctx, "settings", closed)
    refused = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": token},
        {"Authorization": "Bearer"},
    ]
    for headers in refused:
        response = await _scrape(app_server, headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "crm_" not in response.text
    for scheme in ("Bearer", "bearer"):
        allowed = await _scrape(app_server, {"Authorization": f"{scheme} {token}"})
        assert allowed.status_code == 200
        assert "crm_webhooks_received_total" in allowed.text


async def test_metrics_are_public_without_a_token(app_server: RunningApp) -> None:
    ctx: AppContext = app_server.app.state.ctx
    assert ctx.settings.metrics_token.get_secret_value() == ""
    response = await _scrape(app_server)
    assert response.status_code == 200
    assert "crm_webhooks_received_total" in response.text
