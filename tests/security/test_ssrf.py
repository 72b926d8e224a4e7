"""Issue 16 §8: `/api/register` must not probe the app's network.

With the default `ALLOWED_SALEOR_URLS=*`, a Saleor URL whose address is not public is
refused from the address, before any connection; what happened on the way to a Saleor is
never echoed. Every listener here is on loopback, and every address outside
127.0.0.0/8 and ::1 meets a transport that fails the test instead of connecting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from plugin.context import AppContext
from plugin.saleor.egress import (
    AddressRefusedError,
    EgressRefused,
    GuardedTransport,
    IPAddress,
    SaleorEgress,
    public_address,
    resolve,
)
from tests.conftest import RunningApp

PUBLIC = ipaddress.ip_address("93.184.216.34")  # never connected to: see Tripwire


class Tripwire(httpcore.AsyncNetworkBackend):
    """A network layer that records each connection asked of it and opens none."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        raise httpcore.ConnectError("tripwire: the test allows no connection here")

    async def sleep(self, seconds: float) -> None:
        return None


class Listener:
    """A loopback TCP port that accepts nothing itself: a connection the app made stays
    in the backlog, where `connections()` finds it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


def _resolver(names: dict[str, list[IPAddress]]) -> Any:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        if host in names:
            return names[host]
        return await resolve(host, port)  # IP literals and `localhost` only, in these tests

    return resolver


@pytest.fixture
async def open_policy(
    app_server: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Tripwire]:
    """The app as deployed with the default `ALLOWED_SALEOR_URLS=*`; any outgoing call that
    is not refused meets the returned tripwire instead of the network."""
    ctx: AppContext = app_server.app.state.ctx
    tripwire = Tripwire()
    egress = SaleorEgress(
        "*",
        resolver=_resolver(
            {
                "internal.shop.test": [ipaddress.ip_address("10.1.2.3")],
                "mixed.shop.test": [PUBLIC, ipaddress.ip_address("10.0.0.5")],
            }
        ),
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        tripwire.calls.append((request.url.host, request.url.port or 0))
        return httpx.Response(599)

    monkeypatch.setattr(
        ctx, "settings", ctx.settings.model_copy(update={"allowed_saleor_urls": "*"})
    )
    guarded = httpx.AsyncClient(transport=GuardedTransport(egress, tripwire))
    mocked = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    monkeypatch.setattr(ctx, "saleor_egress", egress, raising=False)
    monkeypatch.setattr(ctx, "saleor_http", guarded, raising=False)
    monkeypatch.setattr(ctx, "http", mocked)  # the client the app used for Saleor before
    yield tripwire
    monkeypatch.undo()
    await guarded.aclose()
    await mocked.aclose()


async def _register(app: RunningApp, api_url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{app.base_url}/api/register",
            json={"auth_token": "a" * 30},
            headers={"Saleor-Api-Url": api_url, "Saleor-Domain": "shop.example.com"},
        )


def _assert_prohibited(response: httpx.Response, api_url: str) -> None:
    assert response.status_code == 403, (api_url, response.text)
    assert response.json() == {
        "success": False,
        "error": {
            "code": "SALEOR_URL_PROHIBITED",
            "message": "This Saleor instance may not install the app.",
        },
    }


async def test_loopback_is_refused_before_any_connection(
    app_server: RunningApp, open_policy: Tripwire, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx: AppContext = app_server.app.state.ctx
    # Here the refusal alone stands between the app and a real loopback listener.
    real = httpx.AsyncClient(transport=GuardedTransport(ctx.saleor_egress))
    monkeypatch.setattr(ctx, "saleor_http", real)
    listener = Listener()
    try:
        port = listener.port
        urls = [
            f"http://127.0.0.1:{port}/graphql/",
            f"http://127.8.9.10:{port}/graphql/",
            f"http://localhost:{port}/graphql/",
            f"http://[::ffff:127.0.0.1]:{port}/graphql/",
            f"http://2130706433:{port}/graphql/",  # 127.0.0.1 written as one number
            f"http://0.0.0.0:{port}/graphql/",
            f"http://[::]:{port}/graphql/",
        ]
        for url in urls:
            _assert_prohibited(await _register(app_server, url), url)
        assert listener.connections() == 0
    finally:
        listener.close()
        await real.aclose()
    assert open_policy.calls == []


async def test_ipv6_loopback_is_refused_before_any_connection(
    app_server: RunningApp, open_policy: Tripwire
) -> None:
    try:
        listener = Listener("::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        url = f"http://[::1]:{listener.port}/graphql/"
        _assert_prohibited(await _register(app_server, url), url)
        assert listener.connections() == 0
    finally:
        listener.close()
    assert open_policy.calls == []


async def test_private_link_local_and_reserved_addresses_are_refused_without_a_connection(
    app_server: RunningApp, open_policy: Tripwire
) -> None:
    urls = [
        "http://10.0.0.1/graphql/",
        "http://172.16.5.4:8000/graphql/",
        "http://192.168.1.1/graphql/",
        "http://169.254.169.254/latest/meta-data/",  # a cloud metadata service
        "http://100.64.0.1/graphql/",  # shared address space
        "http://224.0.0.1/graphql/",
        "http://240.0.0.1/graphql/",
        "http://255.255.255.255/graphql/",
        "http://[fe80::1]/graphql/",
        "http://[fd00::1]/graphql/",
        "http://[ff02::1]/graphql/",
        "http://[::ffff:192.168.0.1]/graphql/",
        "http://[64:ff9b::a9fe:a9fe]/graphql/",  # NAT64 form of 169.254.169.254
        "http://[2002:a00:1::]/graphql/",  # 6to4 form of 10.0.0.1
        "https://internal.shop.test/graphql/",  # a name that resolves to 10.1.2.3
        "https://mixed.shop.test/graphql/",  # one public and one private address
    ]
    for url in urls:
        _assert_prohibited(await _register(app_server, url), url)
    assert open_policy.calls == []


async def test_failures_on_the_way_to_saleor_are_not_echoed(app_server: RunningApp) -> None:
    """Under the test set-up's explicit `http://127.0.0.1:*`, the app does call loopback:
    whatever answers (or does not), the installer reads one message."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            if self.path.startswith("/disconnect"):
                self.connection.close()
                return
            if self.path.startswith("/garbage"):
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"{x]")
                return
            self.send_error(405)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = Listener()
    closed_port = closed.port
    closed.close()  # nothing listens there any more: connection refused
    port = server.server_address[1]
    try:
        answers = [
            await _register(app_server, f"http://127.0.0.1:{port}/graphql/"),
            await _register(app_server, f"http://127.0.0.1:{port}/disconnect/graphql/"),
            await _register(app_server, f"http://127.0.0.1:{port}/garbage/graphql/"),
            await _register(app_server, f"http://127.0.0.1:{closed_port}/graphql/"),
        ]
    finally:
        server.shutdown()
        server.server_close()
    first = answers[0].json()
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.json() == first, [a.text for a in answers]
        for detail in ("405", "isconnect", "refused", "JSON", "HTTP", str(port), "Errno"):
            assert detail not in answer.text, answer.text
    assert first["error"]["code"] == "UNKNOWN_APP_ID"


# -- the policy and the transport on their own ------------------------------------------


def test_public_addresses() -> None:
    refused = [
        "127.0.0.1",
        "0.0.0.0",
        "10.1.1.1",
        "169.254.1.1",
        "100.100.1.1",
        "224.1.1.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff05::2",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "2001:db8::1",
    ]
    for text in refused:
        assert not public_address(ipaddress.ip_address(text)), text
    for text in [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ]:
        assert public_address(ipaddress.ip_address(text)), text


def test_patterns_match_part_by_part_and_only_named_hosts_are_trusted() -> None:
    egress = SaleorEgress("https://*.saleor.cloud/graphql/, http://127.0.0.1:*, *")
    assert egress.allows("https://shop.saleor.cloud/graphql/")
    # the `*` of a pattern's host does not reach into the path or the credentials
    only_cloud = SaleorEgress("https://*.saleor.cloud/graphql/")
    assert not only_cloud.allows("https://evil.example/x.saleor.cloud/graphql/")
    assert not only_cloud.allows("https://evil.example/?.saleor.cloud/graphql/")
    assert not only_cloud.allows("https://shop.saleor.cloud:6379/graphql/")
    assert not SaleorEgress("http://127.0.0.1:*").allows(
        "http://127.0.0.1:80@evil.example/graphql/"
    )
    assert not egress.allows("http://user:pw@shop.saleor.cloud/graphql/")  # credentials
    assert egress.names("shop.saleor.cloud", 443)
    assert egress.names("127.0.0.1", 6379)
    assert not egress.names("10.0.0.1", 80)  # matched by `*` only
    assert not SaleorEgress("http://*:*, https://*").names("10.0.0.1", 80)
    assert SaleorEgress("http://[::1]:*").allows("http://[::1]:8000/graphql/")


async def test_the_connection_goes_to_the_checked_address() -> None:
    tripwire = Tripwire()
    egress = SaleorEgress("*", resolver=_resolver({"shop.example.test": [PUBLIC]}))
    async with httpx.AsyncClient(transport=GuardedTransport(egress, tripwire)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("https://shop.example.test/graphql/")
    assert tripwire.calls == [(str(PUBLIC), 443)]  # the address, not the name again


async def test_a_name_rebound_after_the_check_is_refused_at_connect() -> None:
    answers = [[PUBLIC], [ipaddress.ip_address("127.0.0.1")]]

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    tripwire = Tripwire()
    egress = SaleorEgress("*", resolver=rebinding)
    await egress.check("https://rebind.example.test/graphql/")  # public at first
    async with httpx.AsyncClient(transport=GuardedTransport(egress, tripwire)) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            await client.post("https://rebind.example.test/graphql/", json={})
    assert isinstance(refused.value.__cause__, AddressRefusedError)
    assert "not a public address" in str(refused.value)
    assert tripwire.calls == []
    with pytest.raises(EgressRefused):
        await egress.check("https://rebind.example.test/graphql/")


async def test_the_import_job_holds_to_the_policy_after_install(
    app_server: RunningApp,  # its in-process worker runs the job's event loop
    saleor: Any,
    db: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shop's name may point elsewhere after it installed (DNS rebinding): the history
    import, which calls the stored Saleor URL, checks the address on every connection."""
    from jobs.importer import run_import
    from jobs.runtime import context
    from plugin.importer.models import ImportStatus
    from tests.importing import get_run, queue_run, shop_installation

    installation_id = await shop_installation(db, saleor, settings)
    run_id = await queue_run(db, installation_id)
    # As if deployed with `*`: the loopback simulator now stands for an internal address.
    monkeypatch.setattr(context(), "saleor_egress", SaleorEgress("*"), raising=False)
    await asyncio.to_thread(run_import.fn, run_id)
    run = await get_run(db, run_id)
    assert run.status is ImportStatus.FAILED
    assert "not a public address" in (run.last_error or "")
    assert saleor.graphql_requests == []  # nothing reached it
