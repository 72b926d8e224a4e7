"""Fixtures of the suite against a real Saleor 3.23.28 (`make test-saleor`).

One Saleor per test run: uvicorn with two workers on a free loopback port, on a fresh copy
of the template database (populatedb's shop, staff admin@example.com / admin), signing
with a key the run generated (`RSA_PRIVATE_KEY`, so a test can restart it with another).
The CRM runs in this process like in the other suites (`RunningApp`) and is installed
into that Saleor with `appInstall`, exactly as a merchant's dashboard does it.

The modules run in the order of `MODULE_ORDER`: the import is checked against the shop
as populatedb left it, the uninstall comes last.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.saleor.models import Installation
from plugin.settings import Settings
from tests.conftest import RUN_ID, RunningApp
from tests.dashboard_browser import (
    HostServer,
    browser,  # noqa: F401 - the session's Chromium
)
from tests.real_saleor.environment import (
    Environment,
    SaleorUnavailable,
    create_run_database,
    drop_run_database,
    ensure_environment,
)
from tests.real_saleor.saleor_api import SaleorApi, dashboard_token, install_app
from tests.real_saleor.server import SaleorServer

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "var" / "real-saleor"
MODULE_ORDER = [
    "test_environment.py",
    "test_install_import.py",
    "test_live.py",
    "test_extensions.py",
    "test_signing_key.py",
    "test_reinstall.py",
    # Last: its phone orders give the staff account orders, which puts it in Saleor's
    # `customers` (staff with orders): the extensions' first customer by e-mail and the
    # re-install's customer count would change under those tests.
    "test_issue15_points.py",
]
# Saleor calls the app on loopback; the app must name that Saleor as allowed explicitly.
ALLOWED_SALEOR_URLS = "http://127.0.0.1:*"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: the tests of a module keep their order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    server = _SERVERS[0] if _SERVERS else None
    if report.failed and server is not None:
        report.sections.append(("Saleor log (tail)", server.log_tail(80)))
    return report


_SERVERS: list[SaleorServer] = []


def unavailable(problem: SaleorUnavailable) -> str:
    """What a machine that cannot run Saleor means for the run: "fail", except "skip"
    outside CI when the developer opted out with CRM_SKIP_REAL_SALEOR=1."""
    opted_out = os.environ.get("CRM_SKIP_REAL_SALEOR") == "1"
    return "skip" if opted_out and os.environ.get("CI") != "true" else "fail"


@pytest.fixture(scope="session")
def saleor_environment() -> Environment:
    """Built once per machine (minutes), found in a second afterwards. Missing CPython
    3.12, PyPI or PostgreSQL fails the run; only outside CI may one opt out explicitly."""
    try:
        return ensure_environment()
    except SaleorUnavailable as exc:
        if unavailable(exc) == "skip":
            pytest.skip(f"CRM_SKIP_REAL_SALEOR=1: {exc}")
        pytest.fail(f"the real Saleor cannot run here: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def saleor_server(saleor_environment: Environment) -> Iterator[SaleorServer]:
    database = create_run_database(saleor_environment)
    LOGS.mkdir(parents=True, exist_ok=True)
    server = SaleorServer(saleor_environment, database, LOGS / f"saleor-{RUN_ID}.log")
    try:
        server.start()
        _SERVERS.append(server)
        yield server
    finally:
        _SERVERS.clear()
        server.stop()
        drop_run_database(database)


@pytest.fixture(scope="session")
def saleor_api(saleor_server: SaleorServer) -> SaleorApi:
    return SaleorApi(saleor_server)


@pytest.fixture(scope="session")
def dashboard_host() -> Iterator[HostServer]:
    """Where the browser tests' host pages (the dashboard's part) are served from."""
    host = HostServer()
    yield host
    host.stop()


@pytest.fixture(scope="session")
def crm_app(
    settings: Settings, saleor_server: SaleorServer, dashboard_host: HostServer
) -> Iterator[RunningApp]:
    """The CRM on loopback, reachable by Saleor, allowing exactly loopback Saleors, and
    framed by this Saleor's dashboard (the host pages' origin)."""
    running = RunningApp(
        settings.model_copy(
            update={
                "allowed_saleor_urls": ALLOWED_SALEOR_URLS,
                "dashboard_origins": f"{saleor_server.api_url}={dashboard_host.origin}",
            }
        )
    )
    running.start()
    yield running
    running.stop()


@dataclass
class Shop:
    """The CRM installed into the real Saleor. A re-install changes `app_id` and
    `installation_id`; tests read them from here."""

    saleor: SaleorApi
    app: RunningApp
    db: Database
    app_id: str
    installation_id: int

    @property
    def manifest_url(self) -> str:
        return f"{self.app.base_url}/api/manifest"

    async def crm_headers(self) -> dict[str, str]:
        """What the dashboard's iframe sends to the app: the staff member's JWT for the app."""
        token = await dashboard_token(self.saleor, self.app_id)
        return {"authorization-bearer": token, "saleor-api-url": self.saleor.server.api_url}

    async def crm(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The CRM's GraphQL API as the dashboard calls it; errors fail the test."""
        async with httpx.AsyncClient(base_url=self.app.base_url, timeout=60) as client:
            answer = await client.post(
                "/graphql",
                json={"query": query, "variables": variables or {}},
                headers=await self.crm_headers(),
            )
        body = answer.json()
        assert answer.status_code == 200, body
        assert not body.get("errors"), body
        return body["data"]

    async def install(self) -> None:
        self.app_id = await install_app(self.saleor, self.manifest_url)
        self.installation_id = await installation_for(self.db, self.saleor.server.api_url)


async def installation_for(db: Database, api_url: str) -> int:
    async with db.session() as session:
        found = await session.scalar(
            select(Installation.id).where(Installation.saleor_api_url == api_url)
        )
    assert found is not None, f"the CRM stored no installation for {api_url}"
    return int(found)


@pytest.fixture(scope="session")
async def shop(saleor_api: SaleorApi, crm_app: RunningApp, db: Database) -> Shop:
    """populatedb's shop with the CRM installed from its manifest URL by `appInstall`."""
    installed = Shop(saleor_api, crm_app, db, app_id="", installation_id=0)
    await installed.install()
    return installed


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 20.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = await probe()
        except AssertionError as exc:
            result, last = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s (last: {last})")
        await asyncio.sleep(interval)
