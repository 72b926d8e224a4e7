"""Staff alerts survive crashes: the alert is stored in the outbox in the transaction that
wrote the status, the scheduled re-drive sends it after a crash at any point, and the
order note reaches Saleor at most once (a crash after Saleor took it is caught by
reading the order's notes back).

Saleor here is a loopback GraphQL server that validates every document against
Saleor's schema and keeps the notes and metadata it is sent. The shops live in 2027 and
no alert is claimed before it was raised, so the app's own tick (real time) never takes
these alerts from under a test.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from graphql import execute_sync, parse, validate
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.saleor.models import Installation, InstallationStatus
from plugin.tracking import accounts, alerts
from plugin.tracking.models import AlertOutbox, Shipment
from plugin.tracking.polling import poll_round
from plugin.tracking.statuses import Status
from tests.carrier_doubles import AfterShipDouble
from tests.saleor_schema import saleor_schema

FUTURE = datetime(2027, 9, 1, 9, 0, tzinfo=UTC)
BOX = accounts.box("test-secret-key-not-for-production")
TOKENS = SecretBox("test-secret-key-not-for-production")
TOKEN = "saleor-app-token"


class SaleorNotes:
    """Saleor's `orderNoteAdd`, `updateMetadata` and `order { events }` over HTTP."""

    def __init__(self) -> None:
        self.notes: dict[str, list[str]] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.operations: list[str] = []
        self.invalid: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql/"

    def _root(self) -> dict[str, Any]:
        def note_add(info: Any, order: str, input: dict[str, Any]) -> dict[str, Any]:
            self.notes.setdefault(order, []).append(input["message"])
            return {"event": {"id": uuid.uuid4().hex}, "errors": []}

        def update_metadata(info: Any, id: str, input: list[dict[str, str]]) -> dict[str, Any]:
            self.metadata.setdefault(id, {}).update({i["key"]: i["value"] for i in input})
            return {"errors": []}

        def order(info: Any, id: str | None = None, **_: Any) -> dict[str, Any] | None:
            events = [{"type": "NOTE_ADDED", "message": m} for m in self.notes.get(id or "", [])]
            return {"id": id, "events": events}

        return {"orderNoteAdd": note_add, "updateMetadata": update_metadata, "order": order}

    def answer(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 200, {"data": None, "errors": [{"message": "Invalid token."}]}
        request = json.loads(raw)
        document = parse(request["query"])
        if errors := validate(saleor_schema(), document):
            self.invalid.append(request["query"])
            return 400, {"errors": [{"message": e.message} for e in errors]}
        self.operations.append(request["query"].split("(")[0].split()[-1])
        result = execute_sync(
            saleor_schema(),
            document,
            root_value=self._root(),
            variable_values=request.get("variables") or {},
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [{"message": e.message} for e in result.errors]
        return 200, body

    def start(self) -> SaleorNotes:
        saleor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = saleor.answer(headers, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class Crash(BaseException):
    """The worker process dies (not an error any code path catches)."""


@pytest.fixture
def saleor() -> Iterator[SaleorNotes]:
    notes = SaleorNotes().start()
    yield notes
    notes.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def _shop(db: Database, saleor: SaleorNotes, aftership: AfterShipDouble) -> int:
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=saleor.url + f"?shop={uuid.uuid4().hex}",
            app_id="QXBwOjE=",
            token_encrypted=TOKENS.encrypt(TOKEN),
            jwks={"keys": []},
            installed_at=FUTURE - timedelta(days=30),
        )
        session.add(installation)
        await session.flush()
        await accounts.configure(
            session,
            BOX,
            installation_id=installation.id,
            carrier="aftership",
            credentials={"api_key": "as-key"},
            base_url=aftership.base_url,
        )
        return installation.id


async def _returned_parcel(
    db: Database, installation_id: int, aftership: AfterShipDouble, number: str
) -> int:
    """A parcel the carrier is sending back: the poll raises the "returned" alert."""
    aftership.set_tracking(
        number,
        "Exception",
        subtag="Exception_011",
        checkpoints=[("2027-08-31T10:00:00Z", "Exception", "Returned to sender", "Berlin")],
    )
    async with unit_of_work(db) as session:
        shipment = Shipment(
            installation_id=installation_id,
            fulfillment_saleor_id=f"RnVsZmlsbG1lbnQ6{number}",
            order_saleor_id=f"T3JkZXI6{number}",
            order_number="1001",
            tracking_number=number,
            carrier="aftership",
            carrier_source="staff",
            status=Status.IN_TRANSIT,
            shipped_at=FUTURE - timedelta(days=3),
            status_changed_at=FUTURE - timedelta(days=2),
            source_updated_at=FUTURE - timedelta(days=3),
            next_poll_at=FUTURE,
        )
        session.add(shipment)
        await session.flush()
        return shipment.id


async def _outbox(db: Database, shipment_id: int) -> list[AlertOutbox]:
    async with db.session() as session:
        rows = await session.scalars(
            select(AlertOutbox).where(AlertOutbox.shipment_id == shipment_id)
        )
        return list(rows)


async def _poll(db: Database, http: httpx.AsyncClient, at: datetime) -> None:
    await poll_round(db, http, BOX, batch=100, stalled_days=5, clock=lambda: at)


async def test_alert_written_with_the_status_is_sent_after_a_crash_before_the_send(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        sid = await _returned_parcel(db, shop, aftership, "RET100001")
        # The round commits the status and dies before any send.
        await _poll(db, http, FUTURE)
    (row,) = await _outbox(db, sid)
    assert row.sent_at is None
    assert row.claimed_until is None
    assert "returned to the sender" in row.message
    async with db.session() as session:
        shipment = await session.get(Shipment, sid)
        assert shipment is not None
        assert shipment.status is Status.EXCEPTION  # same transaction as the alert
        assert shipment.alerts_pending is True
    assert saleor.notes == {}

    # A worker whose clock lags the one that raised it (the app's own, ticking in real
    # time, among them) leaves it alone.
    earlier = FUTURE - timedelta(minutes=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: earlier) == 0
    # The next tick re-drives the outbox.
    later = FUTURE + timedelta(minutes=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: later) == 1
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: later) == 0
    order = "T3JkZXI6RET100001"
    assert len(saleor.notes[order]) == 1
    assert "returned to the sender" in saleor.notes[order][0]
    meta = saleor.metadata["RnVsZmlsbG1lbnQ6RET100001"]
    assert meta[alerts.META_STATUS] == "Exception"
    assert saleor.invalid == []
    (row,) = await _outbox(db, sid)
    assert row.sent_at == later
    async with db.session() as session:
        shipment = await session.get(Shipment, sid)
        assert shipment is not None
        assert shipment.alerts_pending is False
        assert all(a["sent_at"] for a in (shipment.alerts or {}).values())


async def test_a_claim_left_by_a_dead_worker_is_taken_over_after_its_lease(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        sid = await _returned_parcel(db, shop, aftership, "RET100002")
        await _poll(db, http, FUTURE)

    # A worker claims the alert and dies before it calls Saleor.
    dead_worker = httpx.AsyncClient(
        timeout=10, event_hooks={"request": [_crash_on("OrderNoteAdd")]}
    )
    with pytest.raises(Crash):
        await alerts.send_pending(db, dead_worker, TOKENS, clock=lambda: FUTURE)
    await dead_worker.aclose()
    assert saleor.notes == {}
    # While the lease holds nobody else sends it.
    during = FUTURE + alerts.LEASE - timedelta(seconds=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: during) == 0
    after = FUTURE + alerts.LEASE + timedelta(seconds=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: after) == 1
    assert len(saleor.notes["T3JkZXI6RET100002"]) == 1
    (row,) = await _outbox(db, sid)
    assert row.attempts == 2
    assert row.sent_at == after


async def test_a_note_saleor_took_before_the_crash_is_not_written_again(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        sid = await _returned_parcel(db, shop, aftership, "RET100003")
        await _poll(db, http, FUTURE)

    # Saleor adds the note, then the worker dies before it can record so.
    dying = httpx.AsyncClient(timeout=10, event_hooks={"response": [_crash_after("OrderNoteAdd")]})
    with pytest.raises(Crash):
        await alerts.send_pending(db, dying, TOKENS, clock=lambda: FUTURE)
    await dying.aclose()
    order = "T3JkZXI6RET100003"
    assert len(saleor.notes[order]) == 1
    (row,) = await _outbox(db, sid)
    assert row.sent_at is None

    after = FUTURE + alerts.LEASE + timedelta(seconds=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: after) == 1
    assert len(saleor.notes[order]) == 1  # read back, not written twice
    assert "OrderNotes" in saleor.operations
    assert alerts.META_ALERT in saleor.metadata["RnVsZmlsbG1lbnQ6RET100003"]
    (row,) = await _outbox(db, sid)
    assert row.sent_at == after


async def test_saleor_refusing_keeps_the_alert_for_a_later_tick(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        # Revoked before the alert exists: the app's own worker, ticking with the real
        # clock, must not send it in between either.
        async with unit_of_work(db) as session:
            installation = await session.get(Installation, shop)
            assert installation is not None
            installation.token_encrypted = TOKENS.encrypt("revoked-token")
        sid = await _returned_parcel(db, shop, aftership, "RET100004")
        await _poll(db, http, FUTURE)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: FUTURE) == 0
    (row,) = await _outbox(db, sid)
    assert row.sent_at is None
    assert row.last_error
    assert row.claimed_until is not None
    assert row.claimed_until > FUTURE
    async with unit_of_work(db) as session:
        installation = await session.get(Installation, shop)
        assert installation is not None
        installation.token_encrypted = TOKENS.encrypt(TOKEN)
    retry = row.claimed_until + timedelta(seconds=1)
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: retry) == 1
    assert len(saleor.notes["T3JkZXI6RET100004"]) == 1


async def test_an_uninstalled_shop_drops_its_alerts(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        sid = await _returned_parcel(db, shop, aftership, "RET100005")
        await _poll(db, http, FUTURE)
    async with unit_of_work(db) as session:
        installation = await session.get(Installation, shop)
        assert installation is not None
        installation.status = InstallationStatus.REMOVED
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: FUTURE) == 0
    (row,) = await _outbox(db, sid)
    assert row.dropped_at == FUTURE
    assert row.sent_at is None
    assert saleor.notes == {}
    async with db.session() as session:
        shipment = await session.get(Shipment, sid)
        assert shipment is not None
        assert shipment.alerts_pending is False


def _at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _crash_on(operation: str) -> Any:
    async def hook(request: httpx.Request) -> None:
        if f"mutation {operation}" in request.content.decode():
            raise Crash(f"worker died before {operation}")

    return hook


def _crash_after(operation: str) -> Any:
    async def hook(response: httpx.Response) -> None:
        if f"mutation {operation}" in response.request.content.decode():
            raise Crash(f"worker died after {operation}")

    return hook


async def test_the_stalled_scan_moves_past_parcels_already_alerted(
    db: Database, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
    async with unit_of_work(db) as session:
        for n in range(3):
            session.add(
                Shipment(
                    installation_id=shop,
                    fulfillment_saleor_id=f"F-STALL{n}",
                    order_saleor_id=f"O-STALL{n}",
                    tracking_number=f"STALL{n}",
                    carrier="aftership",
                    carrier_source="staff",
                    status=Status.IN_TRANSIT,
                    shipped_at=FUTURE - timedelta(days=12),
                    status_changed_at=FUTURE - timedelta(days=10, hours=n),
                    source_updated_at=FUTURE - timedelta(days=12),
                    last_polled_at=FUTURE - timedelta(hours=1),
                )
            )

    async def scan() -> list[str]:
        raised = []
        async with unit_of_work(db) as session:
            for shipment in await alerts.stalled_candidates(
                session, FUTURE, 5, installation_id=shop, limit=2
            ):
                raised += await alerts.raise_alerts(session, shipment, FUTURE, 5)
        return raised

    first, second, third = await scan(), await scan(), await scan()
    assert [key.split(":")[1] for key in first] == ["STALL2", "STALL1"]  # oldest first
    assert [key.split(":")[1] for key in second] == ["STALL0"]
    assert third == []


async def test_an_alert_saleor_keeps_refusing_is_given_up(
    db: Database, http: httpx.AsyncClient, saleor: SaleorNotes
) -> None:
    with AfterShipDouble() as aftership:
        shop = await _shop(db, saleor, aftership)
        sid = await _returned_parcel(db, shop, aftership, "RET100006")
        await _poll(db, http, FUTURE)
    async with unit_of_work(db) as session:
        installation = await session.get(Installation, shop)
        assert installation is not None
        installation.token_encrypted = TOKENS.encrypt("revoked-token")
    at = FUTURE
    for _ in range(alerts.MAX_ATTEMPTS):
        assert await alerts.send_pending(db, http, TOKENS, clock=_at(at)) == 0
        (row,) = await _outbox(db, sid)
        at = (row.claimed_until or at) + timedelta(seconds=1)
    assert row.attempts == alerts.MAX_ATTEMPTS
    assert row.dropped_at is not None
    assert "Invalid token" in (row.last_error or "")
    assert await alerts.send_pending(db, http, TOKENS, clock=lambda: at) == 0
    (row,) = await _outbox(db, sid)
    assert row.attempts == alerts.MAX_ATTEMPTS  # not tried again
    async with db.session() as session:
        shipment = await session.get(Shipment, sid)
        assert shipment is not None
        assert shipment.alerts_pending is False
