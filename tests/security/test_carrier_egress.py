"""Issue 16 §8 for carrier APIs: staff set a carrier account's base URL, and the app calls
it. Under the same egress policy as calls to Saleor (`ALLOWED_CARRIER_URLS`, default
`*` = public addresses only), a base URL on a loopback, private or link-local address is
refused when staff save it (INVALID_INPUT, decided from the address, no connection) and
again on every connection when polling (the stored name may resolve elsewhere later).

As in test_ssrf.py, the app is set up as deployed with the default `*`, under which the
loopback carrier double stands for an internal address; every address outside
127.0.0.0/8 and ::1 meets a tripwire instead of the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from plugin.context import AppContext
from plugin.db.engine import Database
from plugin.saleor.egress import CarrierEgress, GuardedTransport, IPAddress
from plugin.settings import Settings
from plugin.tracking.accounts import REFUSED_BASE_URL
from plugin.tracking.models import CarrierAccount
from tests.api import gql, staff_headers
from tests.carrier_doubles import AfterShipDouble
from tests.conftest import RunningApp
from tests.security.test_ssrf import PUBLIC, Listener, Tripwire, _resolver
from tests.test_tracking_polling import FUTURE, Shop, _round, shop  # noqa: F401

CONFIGURE = """
mutation ($input: CarrierAccountInput!) {
  carrierAccountConfigure(input: $input) { carrier baseUrl }
}"""
NAMES: dict[str, list[IPAddress]] = {
    "internal.carrier.test": [ipaddress.ip_address("10.1.2.3")],
    "mixed.carrier.test": [PUBLIC, ipaddress.ip_address("169.254.169.254")],
    "public.carrier.test": [PUBLIC],
}


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


@pytest.fixture
async def open_policy(
    app_server: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    """The app with `ALLOWED_CARRIER_URLS=*`; any outgoing call made while saving is
    recorded in the returned list (and answered by no network)."""
    ctx: AppContext = app_server.app.state.ctx
    called: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        called.append(str(request.url))
        return httpx.Response(599)

    tripwire = Tripwire()
    egress = CarrierEgress("*", resolver=_resolver(NAMES))
    mocked = httpx.AsyncClient(transport=httpx.MockTransport(record))
    guarded = httpx.AsyncClient(transport=GuardedTransport(egress, tripwire))
    monkeypatch.setattr(ctx, "carrier_egress", egress)
    monkeypatch.setattr(ctx, "http", mocked)
    monkeypatch.setattr(ctx, "carrier_client", lambda: guarded)
    yield called
    monkeypatch.undo()
    await mocked.aclose()
    await guarded.aclose()
    called += [f"{host}:{port}" for host, port in tripwire.calls]


async def _save(app: RunningApp, saleor: Any, base_url: str) -> Any:
    return await gql(
        app,
        CONFIGURE,
        {
            "input": {
                "carrier": "AFTERSHIP",
                "baseUrl": base_url,
                "credentials": [{"key": "api_key", "value": "as-key"}],
            }
        },
        staff_headers(saleor),
    )


async def test_an_internal_base_url_is_refused_when_staff_save_it(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    open_policy: list[str],
    listener: Listener,
) -> None:
    port = listener.port
    urls = [
        "http://10.0.0.1/v4",
        "http://169.254.169.254/latest/meta-data/",
        f"http://localhost:{port}",
        f"http://127.0.0.1:{port}",
        f"http://[::1]:{port}",
        f"http://[::ffff:10.0.0.1]:{port}",
        "https://internal.carrier.test",  # a name that resolves to 10.1.2.3
        "https://mixed.carrier.test",  # one public, one link-local address
    ]
    for url in urls:
        refused = await _save(app_server, saleor, url)
        assert refused.codes == ["INVALID_INPUT"], (url, refused.body)
        error = refused.body["errors"][0]
        assert error["message"] == REFUSED_BASE_URL  # names no address, no outcome
        assert error["extensions"].get("field") in (None, "baseUrl")
    assert listener.connections() == 0
    assert open_policy == []
    async with db.session() as session:
        stored = await session.scalar(
            select(CarrierAccount).where(CarrierAccount.installation_id == installation_id)
        )
    assert stored is None

    allowed = await _save(app_server, saleor, "https://public.carrier.test/v4")
    assert allowed.body.get("errors") is None, allowed.body
    assert allowed.data["carrierAccountConfigure"]["baseUrl"] == "https://public.carrier.test/v4"
    assert open_policy == []  # saving checks the address, it connects to nothing


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


async def test_a_stored_base_url_now_internal_is_refused_at_connect(
    db: Database,
    aftership: AfterShipDouble,
    shop: Shop,  # noqa: F811
) -> None:
    """Saved while allowed, the account's host is internal now (here: the loopback double
    under `*`): the poll is refused before any connection, the parcel keeps waiting."""
    ctx = AppContext.create(Settings(allowed_carrier_urls="*"))
    try:
        await shop.account("aftership", aftership.base_url, {"api_key": "as-key"})
        sid = await shop.ship("1Z999AA10123450077")
        async with ctx.carrier_client() as http:
            await _round(db, http, FUTURE)
    finally:
        await ctx.db.dispose()
    assert aftership.requests == []  # nothing reached the carrier's address
    parcel = await shop.get(sid)
    assert parcel.poll_failures == 1
    assert "not a public address" in (parcel.last_error or "")


async def test_a_rebound_carrier_name_is_refused_at_connect(
    db: Database,
    shop: Shop,  # noqa: F811
) -> None:
    """A public name at save time that resolves to the metadata address when polled."""
    tripwire = Tripwire()
    egress = CarrierEgress(
        "*", resolver=_resolver({"api.carrier.test": [ipaddress.ip_address("169.254.169.254")]})
    )
    await shop.account("aftership", "https://api.carrier.test", {"api_key": "as-key"})
    sid = await shop.ship("1Z999AA10123450078")
    async with httpx.AsyncClient(transport=GuardedTransport(egress, tripwire)) as http:
        await _round(db, http, FUTURE)
    assert tripwire.calls == []
    parcel = await shop.get(sid)
    assert parcel.poll_failures == 1
    assert "not a public address" in (parcel.last_error or "")
