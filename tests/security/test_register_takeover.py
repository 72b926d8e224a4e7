"""Issue 16 §2: `/api/register` must prove the token is THIS app's (`app { identifier }` =
the manifest's `id`) and never swap the app of an active installation; a re-install after
an uninstall (Saleor makes a new App, with a new id) still works."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
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
