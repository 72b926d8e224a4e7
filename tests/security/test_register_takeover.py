"""Issue 16 §2: `/api/register` must prove the token is THIS app's (`app { identifier }` =
the manifest's `id`) and never swap the app of an active installation; a re-install after
an uninstall (Saleor makes a new App, with a new id) still works."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from plugin.context import AppContext
from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
from plugin.saleor.client import SaleorClient
from plugin.saleor.egress import GuardedTransport
from plugin.saleor.installations import get_by_api_url
from plugin.saleor.manifest import app_identifier
from plugin.saleor.models import InstallationStatus
from plugin.settings import Settings
from tests.api import gql, staff_headers
from tests.conftest import RunningApp, register
from tests.simulator import FakeShop, global_id

VIEWER = "{ viewer { email saleorApiUrl } }"


@dataclass(frozen=True)
class Stored:
    """What an installation row says about who it belongs to."""

    id: int
    app_id: str
    token: str
    status: InstallationStatus
    installed_at: Any


async def _stored(db: Database, settings: Settings, api_url: str) -> Stored | None:
    async with db.session() as session:
        row = await get_by_api_url(session, api_url)
    if row is None:
        return None
    box = SecretBox(settings.secret_key.get_secret_value())
    token = box.decrypt(row.token_encrypted)
    return Stored(row.id, row.app_id, token, row.status, row.installed_at)


async def test_token_of_another_app_cannot_install(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings
) -> None:
    for identifier in ("com.example.other-app", None):
        foreign = saleor.foreign_app_token(identifier=identifier)
        response = await register(app_server, saleor, foreign)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "FOREIGN_APP"
    assert await _stored(db, settings, saleor.api_url) is None
    # The app asked Saleor which app owns the token, with a query Saleor validates.
    assert saleor.invalid_queries == []
    assert any(b"identifier" in r["body"] for r in saleor.graphql_requests)


async def test_another_app_cannot_take_over_an_active_installation(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings, installation_id: int
) -> None:
    before = await _stored(db, settings, saleor.api_url)
    assert before is not None
    # Any other app of the same Saleor (no permissions needed to answer `app { id }`) ...
    foreign = await register(app_server, saleor, saleor.foreign_app_token())
    assert foreign.status_code == 401
    # ... even one that carries this app's identifier (Saleor keeps identifiers unique
    # among installed apps; an active installation must not rely on that alone).
    twin = saleor.foreign_app_token(app_number=99, identifier=app_identifier())
    swapped = await register(app_server, saleor, twin)
    assert swapped.status_code == 409, swapped.text
    error = swapped.json()["error"]
    assert error["code"] == "ALREADY_INSTALLED"
    assert "uninstall" in error["message"]
    assert await _stored(db, settings, saleor.api_url) == before
    # The real app's dashboard tokens still open the CRM.
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.data["viewer"]["saleorApiUrl"] == saleor.api_url, answer.body


async def test_reinstall_after_uninstall_takes_the_new_app_and_locks_out_the_old(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings, installation_id: int
) -> None:
    old_app_id = saleor.app_id
    shop = FakeShop(app_id=old_app_id)
    for event in shop.delete_app():
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200
    removed = await _stored(db, settings, saleor.api_url)
    assert removed is not None
    assert removed.status is InstallationStatus.REMOVED

    saleor.reinstall_app(43)  # Saleor's new App row for the second install
    new_token = saleor.new_app_token()
    response = await register(app_server, saleor, new_token)
    assert response.status_code == 200, response.text
    back = await _stored(db, settings, saleor.api_url)
    assert back is not None
    assert (back.id, back.status, back.app_id, back.token) == (
        installation_id,
        InstallationStatus.ACTIVE,
        saleor.app_id,
        new_token,
    )
    assert back.app_id != old_app_id
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.data["viewer"]["saleorApiUrl"] == saleor.api_url, answer.body

    # The old app (were Saleor still to answer for its token) cannot take the shop back.
    old_token = saleor.foreign_app_token(app_number=42, identifier=app_identifier())
    assert saleor.app_id != old_app_id == global_id("App", 42)
    again = await register(app_server, saleor, old_token)
    assert again.status_code == 409, again.text
    assert await _stored(db, settings, saleor.api_url) == back


class OldTokenAnswer(httpx.AsyncBaseTransport):
    """The app's calls to Saleor as usual, except those carrying `token`: they meet
    `answer` (a network failure or an error status) instead of Saleor."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        token: str,
        answer: Callable[[httpx.Request], httpx.Response],
    ) -> None:
        self.inner, self.token, self.answer = inner, token, answer
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") == f"Bearer {self.token}":
            self.calls += 1
            return self.answer(request)
        return await self.inner.handle_async_request(request)


async def test_reinstall_whose_uninstall_event_was_lost_takes_the_new_app(
    app_server: RunningApp, saleor: Any, db: Database, settings: Settings, installation_id: int
) -> None:
    """The APP_DELETED of the first install never arrived: the installation is still
    active when the re-install registers. Saleor refuses the stored token (its App is
    gone), which proves the old app cannot come back: the new app takes the shop."""
    before = await _stored(db, settings, saleor.api_url)
    assert before is not None
    assert before.status is InstallationStatus.ACTIVE
    old_app_id = saleor.app_id
    saleor.reinstall_app(43)  # deleted and installed again; no APP_DELETED delivered
    new_token = saleor.new_app_token()
    response = await register(app_server, saleor, new_token)
    assert response.status_code == 200, response.text
    after = await _stored(db, settings, saleor.api_url)
    assert after is not None
    assert (after.id, after.status, after.app_id, after.token) == (
        installation_id,
        InstallationStatus.ACTIVE,
        saleor.app_id,
        new_token,
    )
    assert after.app_id != old_app_id
    # The app asked Saleor with the stored (old) token, in a document Saleor validates.
    asked_with = [r["headers"].get("authorization") for r in saleor.graphql_requests]
    assert f"Bearer {before.token}" in asked_with
    assert saleor.invalid_queries == []
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.data["viewer"]["saleorApiUrl"] == saleor.api_url, answer.body
    # The new app's token answers: nobody else may swap it out now.
    twin = saleor.foreign_app_token(app_number=99, identifier=app_identifier())
    assert (await register(app_server, saleor, twin)).status_code == 409
    assert await _stored(db, settings, saleor.api_url) == after


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection reset", request=request)


def _bad_gateway(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, json={"errors": [{"message": "Bad gateway"}]})


async def test_a_lost_uninstall_is_not_assumed_when_saleor_cannot_say(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    settings: Settings,
    installation_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only Saleor's refusal of the stored token frees the installation: a network
    failure or an error status on that check keeps the 409."""
    ctx: AppContext = app_server.app.state.ctx
    before = await _stored(db, settings, saleor.api_url)
    assert before is not None
    saleor.reinstall_app(43)
    new_token = saleor.new_app_token()
    for answer in (_unreachable, _bad_gateway):
        failing = OldTokenAnswer(GuardedTransport(ctx.saleor_egress), before.token, answer)
        async with httpx.AsyncClient(transport=failing) as client:
            monkeypatch.setattr(ctx, "saleor_http", client)
            response = await register(app_server, saleor, new_token)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "ALREADY_INSTALLED"
        assert failing.calls == 1, answer
        assert await _stored(db, settings, saleor.api_url) == before
    monkeypatch.undo()
    # Once Saleor can be asked, it refuses the old token: the re-install goes through.
    assert (await register(app_server, saleor, new_token)).status_code == 200


def _saleor_answering(status: int, body: Any) -> SaleorClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return SaleorClient(http, "https://shop.example.test/graphql/", "t" * 30)


async def test_what_counts_as_saleor_refusing_a_token() -> None:
    """Saleor 3.23.28 answers a deleted app's token as an anonymous request: `app: null`,
    or 401 on a shop that refuses storefront traffic; errors of authentication count."""
    storefront = {
        "errors": [
            {
                "message": "Storefront traffic is not allowed.",
                "extensions": {"code": "STOREFRONT_TRAFFIC_NOT_ALLOWED"},
            }
        ]
    }
    denied = {
        "data": {"app": None},
        "errors": [
            {"message": "denied", "extensions": {"exception": {"code": "PermissionDenied"}}}
        ],
    }
    refused = [
        (200, {"data": {"app": None}}),
        (401, storefront),
        (403, {}),
        (200, denied),
    ]
    for status, body in refused:
        assert await _saleor_answering(status, body).token_refused(), (status, body)
    alive = {"data": {"app": {"id": "QXBwOjQy", "identifier": app_identifier()}}}
    other_error = {"errors": [{"message": "boom", "extensions": {"exception": {"code": "X"}}}]}
    not_refused = [
        (200, alive),
        (200, {"data": None}),
        (200, {"data": {}}),
        (200, other_error),
        (500, {"errors": [{"message": "Internal"}]}),
        (503, {}),
        (200, b"<html>not json</html>"),
        (200, b"[]"),
    ]
    for status, body in not_refused:
        assert not await _saleor_answering(status, body).token_refused(), (status, body)
    down = httpx.AsyncClient(transport=httpx.MockTransport(_unreachable))
    assert not await SaleorClient(
        down, "https://shop.example.test/graphql/", "t" * 30
    ).token_refused()
