"""Issue 16 §3: a rotated Saleor key must not lose events or lock out the dashboard.

A signature naming a key the cached JWKS lacks makes the app fetch the JWKS again (per
kid, within a per-shop budget); when it may not fetch yet, or Saleor cannot be reached,
the answer is 503 (Saleor redelivers; the dashboard retries), never 401. Forged kids
cannot keep a real one out; a bad signature with a known kid is 401 and costs nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from plugin.context import AppContext
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent
from plugin.saleor.directory import KnownInstallation
from plugin.saleor.jws import UnknownKeyError
from plugin.saleor.keys import KeysUnavailable, SigningKeys
from tests.api import gql, staff_headers
from tests.conftest import RunningApp
from tests.simulator import FakeShop, SaleorSimulator

VIEWER = "{ viewer { email } }"


async def _inbox_count(db: Database, installation_id: int) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(InboxEvent.installation_id == installation_id)
        )
    return int(count or 0)


def _order_event(shop: FakeShop) -> Any:
    return shop.create_order(email="rot@example.com", lines=[("Mug", "M-1", "Kitchen", 1, 9.0)])[0]


async def _post(app: RunningApp, saleor: Any, event: Any, signature: str) -> httpx.Response:
    headers = {
        **saleor.webhook_headers(event.event_type, event.body),
        "Saleor-Signature": signature,
        "X-Saleor-Signature": signature,
    }
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{app.base_url}{saleor.path_for(event.event_type)}",
            content=event.body,
            headers=headers,
        )


def _random_kid() -> str:
    return secrets.token_urlsafe(32)


class Clock:
    """A monotonic clock the test moves: a millisecond per reading, more on demand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def test_a_forged_kid_does_not_delay_a_real_rotation(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    shop = FakeShop()
    fetches = saleor.jwks_fetches
    forged_kid = _random_kid()
    for _ in range(3):  # the same forged kid again and again: one fetch
        event = _order_event(shop)
        forged = await _post(app_server, saleor, event, saleor.sign(event.body, kid=forged_kid))
        assert forged.status_code == 401, forged.text
        assert forged.json()["error"]["code"] == "SIGNATURE_VERIFICATION_FAILED"
    assert saleor.jwks_fetches == fetches + 1
    saleor.rotate_key()  # right after the forgeries: Saleor's new key signs from now on
    real = await saleor.adeliver(app_server.base_url, _order_event(shop))
    assert real.status_code == 200, real.text
    assert saleor.jwks_fetches == fetches + 2
    assert await _inbox_count(db, installation_id) == 1


async def test_a_flood_of_forged_kids_gets_a_real_rotation_503_then_it_is_accepted(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    installation_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx: AppContext = app_server.app.state.ctx
    clock = Clock()
    budget = SigningKeys(
        ctx.signing_keys.fetch, ctx.signing_keys.store, burst=3, interval_seconds=10, clock=clock
    )
    monkeypatch.setattr(ctx, "signing_keys", budget, raising=False)
    shop = FakeShop()
    fetches = saleor.jwks_fetches
    for n in range(12):
        event = _order_event(shop)
        forged = await _post(app_server, saleor, event, saleor.sign(event.body, kid=_random_kid()))
        # three kids are looked up, then the budget is spent: "retry later", never a 200
        assert forged.status_code == (401 if n < 3 else 503), (n, forged.text)
    assert saleor.jwks_fetches == fetches + 3

    saleor.rotate_key()
    rotated = _order_event(shop)
    first = await saleor.adeliver(app_server.base_url, rotated)
    assert first.status_code == 503, first.text  # Saleor delivers it again, later
    assert first.json()["error"]["code"] == "KEYS_UNAVAILABLE"
    assert 1 <= int(first.headers["Retry-After"]) <= 10
    assert await _inbox_count(db, installation_id) == 0

    clock.now += 10  # Saleor's first retry comes 10 s later; the flood goes on meanwhile
    event = _order_event(shop)
    forged = await _post(app_server, saleor, event, saleor.sign(event.body, kid=_random_kid()))
    assert forged.status_code == 401  # that fetch brought Saleor's new key in ...
    retried = await saleor.adeliver(app_server.base_url, rotated)
    assert retried.status_code == 200, retried.text  # ... so the real one passes at once
    assert saleor.jwks_fetches == fetches + 4
    assert await _inbox_count(db, installation_id) == 1


async def test_saleor_unreachable_during_a_rotation_answers_503_then_takes_the_redelivery(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    saleor.rotate_key()
    saleor.jwks_available = False
    event = _order_event(FakeShop())
    response = await saleor.adeliver(app_server.base_url, event)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "KEYS_UNAVAILABLE"
    assert "500" not in response.json()["error"]["message"]
    assert await _inbox_count(db, installation_id) == 0
    saleor.jwks_available = True
    redelivered = await saleor.adeliver(app_server.base_url, event)
    assert redelivered.status_code == 200, redelivered.text
    assert await _inbox_count(db, installation_id) == 1


async def test_a_bad_signature_with_a_known_kid_is_401_and_costs_nothing(
    app_server: RunningApp, saleor: Any, db: Database, installation_id: int
) -> None:
    fetches = saleor.jwks_fetches
    event = _order_event(FakeShop())
    signature = saleor.sign(event.body)  # Saleor's current key ...
    tampered = event.body.replace(b"Mug", b"Gum")  # ... over other bytes
    headers = {**saleor.webhook_headers(event.event_type, event.body)}
    headers["Saleor-Signature"] = headers["X-Saleor-Signature"] = signature
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{app_server.base_url}/api/webhooks/order", content=tampered, headers=headers
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "SIGNATURE_VERIFICATION_FAILED"
    assert saleor.jwks_fetches == fetches
    assert await _inbox_count(db, installation_id) == 0


async def test_dashboard_token_with_a_new_key_saleor_cannot_serve_yet_is_retryable(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    saleor.rotate_key()
    saleor.jwks_available = False
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.codes == ["UNAVAILABLE"], answer.body
    assert answer.body["errors"][0]["extensions"]["retryAfter"] > 0
    saleor.jwks_available = True
    again = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert again.data == {"viewer": {"email": "staff@example.com"}}, again.body


async def test_a_forged_dashboard_kid_does_not_delay_a_rotated_token(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    forged = {"authorization-bearer": saleor.make_jwt(kid=_random_kid())}
    forged["saleor-api-url"] = saleor.api_url
    assert (await gql(app_server, VIEWER, None, forged)).codes == ["UNAUTHENTICATED"]
    saleor.rotate_key()
    answer = await gql(app_server, VIEWER, None, staff_headers(saleor))
    assert answer.data == {"viewer": {"email": "staff@example.com"}}, answer.body


# -- the key cache on its own ---------------------------------------------------------------


class Keys:
    """A Saleor's JWKS endpoint: counts fetches; `slow` holds them until released."""

    def __init__(self) -> None:
        self.saleor = SaleorSimulator()  # only its keys: never started, no port
        self.fetches = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, installation: KnownInstallation) -> dict[str, Any]:
        self.fetches += 1
        await self.gate.wait()
        jwks: dict[str, Any] = self.saleor.jwks()
        return jwks

    async def store(self, installation_id: int, jwks: dict[str, Any]) -> None:
        return None

    def installation(self) -> KnownInstallation:
        return KnownInstallation(1, "https://shop.example.test/graphql/", "app", {}, True)

    def token(self, kid: str | None = None) -> str:
        return str(self.saleor.sign(b"{}", kid=kid))


async def test_concurrent_requests_with_a_new_kid_share_fetches() -> None:
    keys = Keys()
    cache = SigningKeys(keys.fetch, keys.store, burst=5, interval_seconds=10, clock=Clock())
    installation = keys.installation()
    keys.gate.clear()
    waiting = [
        asyncio.ensure_future(cache.for_token(installation, keys.token())) for _ in range(20)
    ]
    await asyncio.sleep(0)
    keys.gate.set()
    results = await asyncio.gather(*waiting)
    # The first request's fetch, then one for all that arrived while it ran (Saleor may
    # have rotated after that first fetch started).
    assert keys.fetches == 2
    assert all(result == keys.saleor.jwks() for result in results)


async def test_forged_kids_spend_the_budget_but_cannot_keep_a_real_key_out() -> None:
    keys, clock = Keys(), Clock()
    cache = SigningKeys(keys.fetch, keys.store, burst=2, interval_seconds=10, clock=clock)
    installation = keys.installation()
    for _ in range(2):
        with pytest.raises(UnknownKeyError):
            await cache.for_token(installation, keys.token(_random_kid()))
    with pytest.raises(KeysUnavailable):
        await cache.for_token(installation, keys.token(_random_kid()))
    keys.saleor.rotate_key()
    with pytest.raises(KeysUnavailable) as unavailable:
        await cache.for_token(installation, keys.token())
    assert 1 <= unavailable.value.retry_after <= 10
    assert keys.fetches == 2
    clock.now += 10
    with pytest.raises(UnknownKeyError):  # the attacker's next fetch ...
        await cache.for_token(installation, keys.token(_random_kid()))
    assert await cache.for_token(installation, keys.token()) == keys.saleor.jwks()
    assert keys.fetches == 3  # ... is the one that let the real key in


async def test_dashboard_page_during_an_unserved_rotation_says_retry_not_refused(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    saleor.rotate_key()
    saleor.jwks_available = False
    headers = staff_headers(saleor)
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        page = await client.post(
            "/dashboard/fragments/customers", json={"params": {}}, headers=headers
        )
    assert page.status_code == 503, page.text
    assert "not accepted" not in page.text
    assert "Reload the page in a few seconds" in page.text
    assert "127.0.0.1" not in page.text  # how the fetch failed is logged, not shown
