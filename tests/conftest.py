"""Test set-up: a real database (SQLite, or PostgreSQL with Redis), migrated by Alembic,
and the real app served by uvicorn on loopback. `CRM_TEST_DB` picks the database.

The environment is prepared here, before any app module is imported, because the
Dramatiq broker is built from the environment at import time (as in production).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

TEST_DB = os.environ.get("CRM_TEST_DB", "sqlite")
RUN_ID = uuid.uuid4().hex[:10]
_TMP = Path(tempfile.mkdtemp(prefix="crm-test-"))
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_DATABASE = f"crm_test_{RUN_ID}"

os.environ.update(
    SECRET_KEY="test-secret-key-not-for-production",
    LOG_LEVEL="WARNING",
    SWEEP_INTERVAL_SECONDS="0.5",
    SWEEP_MIN_AGE_SECONDS="1",
    DRAMATIQ_NAMESPACE=f"crm-test-{RUN_ID}",
    RUN_WORKER_IN_PROCESS="true",
    ALLOWED_SALEOR_URLS="http://127.0.0.1:*",
    # The carrier doubles listen on loopback: named here, as a deployment names its own.
    ALLOWED_CARRIER_URLS="http://127.0.0.1:*",
    # No test waits for the scheduled whole-shop refresh or refit (they call them): run
    # every few minutes over the hundreds of shops a run creates, they only slow the
    # shared in-process worker (and on SQLite hold the write lock others wait for).
    SEGMENTS_REFRESH_SECONDS="3600",
    PREDICTIONS_REFIT_SECONDS="86400",
)
if TEST_DB == "postgresql":
    os.environ["DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DATABASE
    os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    # One worker serves every test's shops: a tracking tick or a mailing batch of one test
    # must not starve another test's import (SQLite keeps 2: its writers queue anyway).
    os.environ["WORKER_IN_PROCESS_THREADS"] = "4"
elif TEST_DB == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{_TMP}/crm-test.sqlite3"
    os.environ.pop("REDIS_URL", None)
else:  # pragma: no cover
    raise RuntimeError(f"CRM_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")

import uvicorn  # noqa: E402

from plugin.app import create_app  # noqa: E402
from plugin.db.engine import Database  # noqa: E402
from plugin.db.migrate import upgrade  # noqa: E402
from plugin.settings import Settings  # noqa: E402

T = TypeVar("T")

# The suite against a real Saleor needs a built Saleor and minutes: only `make test-saleor`
# (CRM_REAL_SALEOR=1) collects it; the SQLite and PostgreSQL runs leave it out.
collect_ignore = [] if os.environ.get("CRM_REAL_SALEOR") == "1" else ["real_saleor"]


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DB == "postgresql":
        asyncio.run(_pg_admin(f'CREATE DATABASE "{PG_DATABASE}"'))
    upgrade(os.environ["DATABASE_URL"])


def pytest_unconfigure(config: pytest.Config) -> None:
    if TEST_DB == "postgresql":
        try:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
        except Exception:  # leave it; a later run uses another name
            pass


def pytest_report_header(config: pytest.Config) -> str:
    return f"saleor-crm database: {TEST_DB} ({os.environ['DATABASE_URL']})"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningApp:
    """The app served by a real uvicorn on loopback, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app_settings = settings.model_copy(update={"app_url": self.base_url, "port": self.port})
        self.app = create_app(app_settings, configure_logs=False)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="session")
def app_server(settings: Settings) -> Iterator[RunningApp]:
    running = RunningApp(settings)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll until `probe` returns something truthy (work happens in the job worker)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    skip = pytest.mark.skip(reason="needs PostgreSQL (CRM_TEST_DB=postgresql)")
    for item in items:
        if "postgres_only" in item.keywords and TEST_DB != "postgresql":
            item.add_marker(skip)


@pytest.fixture
def saleor() -> Iterator[Any]:
    """A fresh Saleor instance (own port, own RSA key) per test: tests never share a shop."""
    from tests.saleor_schema import saleor_schema
    from tests.simulator import SaleorSimulator

    # Built once per run and slow (seconds): not inside the first request's time-out.
    saleor_schema()

    with SaleorSimulator() as simulator:
        yield simulator


async def register(app: RunningApp, saleor: Any, token: str | None = None) -> Any:
    import httpx

    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{app.base_url}/api/register",
            json={"auth_token": token or saleor.new_app_token()},
            headers=saleor.register_headers(),
        )


@pytest.fixture
async def installation_id(app_server: RunningApp, saleor: Any, db: Database) -> int:
    """The simulator's shop with the app installed; returns the installation id."""
    from plugin.saleor.installations import get_by_api_url

    response = await register(app_server, saleor)
    assert response.status_code == 200, response.text
    async with db.session() as session:
        installation = await get_by_api_url(session, saleor.api_url)
        assert installation is not None
        return installation.id


async def new_installation(db: Database, app_id: str = "QXBwOjE=") -> int:
    """A bare installation row (no HTTP), for tests that fold events directly."""
    from plugin.db.base import utcnow
    from plugin.kit.after_commit import unit_of_work
    from plugin.saleor.models import Installation

    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=f"http://127.0.0.1:1/{uuid.uuid4().hex}/graphql/",
            app_id=app_id,
            token_encrypted="x",
            jwks={"keys": []},
            installed_at=utcnow(),
        )
        session.add(installation)
        await session.flush()
        return installation.id
