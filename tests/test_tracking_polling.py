"""Polling rounds against the carrier doubles: statuses move, each status is written to
the timeline once, the schedule adapts (and stops at a final status), failures back off,
and every carrier account keeps its concurrency and rate limits (429 included).

The shops here live in 2027 and rounds run on a clock there, so the app's own periodic
tick (real time) never finds these shipments due.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.profiles.models import Profile
from plugin.timeline.models import TimelineEntry
from plugin.tracking import accounts, schedule
from plugin.tracking.models import CarrierAccount, Shipment
from plugin.tracking.polling import poll_round
from plugin.tracking.shipments import follow_fulfillment
from plugin.tracking.statuses import Status
from tests.carrier_doubles import AfterShipDouble, CdekDouble, RussianPostDouble
from tests.conftest import new_installation
from tests.simulator import FakeShop

FUTURE = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
BOX = accounts.box("test-secret-key-not-for-production")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


class Shop:
    """A bare installation with one customer, fed fulfillments as Saleor sends them."""

    def __init__(self, db: Database, installation_id: int, profile_id: int) -> None:
        self.db = db
        self.installation_id = installation_id
        self.profile_id = profile_id
        self.saleor = FakeShop(now=FUTURE - timedelta(days=3))

    async def ship(self, number: str, **order: Any) -> int:
        created = self.saleor.create_order(
            email="eve@example.com", lines=[("Mug", "MUG", "Home", 1, 9.0)], **order
        )
        event = self.saleor.fulfill(created[0].object_id, tracking_number=number)[0]
        async with unit_of_work(self.db) as session:
            shipment = await follow_fulfillment(
                session,
                self.installation_id,
                event.payload,
                profile_id=self.profile_id,
                issued_at=event.issued_at,
            )
            assert shipment is not None
            return shipment.id

    async def account(
        self, carrier: str, base_url: str, credentials: dict[str, str], **kw: Any
    ) -> None:
        async with unit_of_work(self.db) as session:
            await accounts.configure(
                session,
                BOX,
                installation_id=self.installation_id,
                carrier=carrier,
                credentials=credentials,
                base_url=base_url,
                **kw,
            )

    async def get(self, shipment_id: int) -> Shipment:
        async with self.db.session() as session:
            shipment = await session.get(Shipment, shipment_id)
            assert shipment is not None
            return shipment

    async def kinds(self, shipment_id: int) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(TimelineEntry)
                .where(
                    TimelineEntry.installation_id == self.installation_id,
                    TimelineEntry.subject_type == "shipment",
                    TimelineEntry.subject_id == str(shipment_id),
                )
                .order_by(TimelineEntry.id)
            )
            return [(row.kind, row.data or {}) for row in rows]


@pytest.fixture
async def shop(db: Database) -> Shop:
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id, email="eve@example.com")
        session.add(profile)
        await session.flush()
        profile_id = profile.id
    return Shop(db, installation_id, profile_id)


async def _round(db: Database, http: httpx.AsyncClient, at: datetime, batch: int = 500) -> Any:
    return await poll_round(db, http, BOX, batch=batch, stalled_days=5, clock=lambda: at)


def test_adaptive_intervals_with_jitter() -> None:
    rng = random.Random(7)
    now = FUTURE
    for status, base in schedule.INTERVALS.items():
        for _ in range(50):
            due = schedule.next_poll(status, now, rng=rng)
            assert due is not None
            assert base * 0.9 <= (due - now).total_seconds() <= base * 1.1
    assert schedule.INTERVALS[Status.OUT_FOR_DELIVERY] < schedule.INTERVALS[Status.IN_TRANSIT]
    assert schedule.INTERVALS[Status.IN_TRANSIT] < schedule.INTERVALS[Status.PENDING]
    assert schedule.next_poll(Status.DELIVERED, now) is None
    assert schedule.next_poll(Status.EXPIRED, now) is None
    assert schedule.backoff(1, now) == now + timedelta(minutes=5)
    assert schedule.backoff(3, now) == now + timedelta(minutes=20)
    assert schedule.backoff(30, now) == now + timedelta(hours=24)
    assert schedule.backoff(1, now, at_least=900) == now + timedelta(minutes=15)


async def test_statuses_move_once_each_and_polling_stops_when_delivered(
    db: Database, http: httpx.AsyncClient, aftership: AfterShipDouble, shop: Shop
) -> None:
    await shop.account("aftership", aftership.base_url, {"api_key": "as-key"})
    sid = await shop.ship("1Z999AA10000000001")
    number = "1Z999AA10000000001"
    points = [("2027-05-30T08:00:00Z", "InfoReceived", "Label created", "Leipzig")]
    aftership.set_tracking(
        number,
        "InTransit",
        checkpoints=[*points, ("2027-05-31T06:00:00Z", "InTransit", "Departed hub", "Leipzig")],
        edd="2027-06-03",
    )
    now = FUTURE
    stats = await _round(db, http, now)
    assert stats.polled >= 1
    shipment = await shop.get(sid)
    assert shipment.status is Status.IN_TRANSIT
    assert shipment.carrier_text == "Departed hub"
    assert shipment.next_poll_at is not None
    assert 3.6 * 3600 <= (shipment.next_poll_at - now).total_seconds() <= 4.4 * 3600

    # Nothing new: same status, no second entry.
    now += timedelta(hours=5)
    await _round(db, http, now)
    aftership.set_tracking(
        number,
        "OutForDelivery",
        subtag="OutForDelivery_001",
        checkpoints=[*points, ("2027-06-01T13:00:00Z", "OutForDelivery", "With courier", "Berlin")],
    )
    now += timedelta(hours=5)
    await _round(db, http, now)
    shipment = await shop.get(sid)
    assert shipment.status is Status.OUT_FOR_DELIVERY
    assert shipment.next_poll_at is not None
    assert (shipment.next_poll_at - now).total_seconds() <= 33 * 60
    aftership.set_tracking(
        number,
        "Delivered",
        subtag="Delivered_001",
        checkpoints=[
            *points,
            ("2027-06-01T15:30:00Z", "Delivered", "Delivered to neighbour", "Berlin"),
        ],
    )
    now += timedelta(minutes=40)
    await _round(db, http, now)
    shipment = await shop.get(sid)
    assert shipment.status is Status.DELIVERED
    assert shipment.delivered_at == datetime(2027, 6, 1, 15, 30, tzinfo=UTC)
    assert shipment.next_poll_at is None
    polls = len(aftership.requests)
    await _round(db, http, now + timedelta(days=2))
    assert len(aftership.requests) == polls  # final: never polled again

    entries = await shop.kinds(sid)
    assert [kind for kind, _ in entries] == [
        "shipment_in_transit",
        "shipment_out_for_delivery",
        "shipment_delivered",
    ]
    in_transit = entries[0][1]
    assert in_transit["estimated_delivery"] == "2027-06-03T00:00:00+00:00"
    assert in_transit["carrier"] == "aftership"
    assert in_transit["status"] == "in_transit"
    assert in_transit["tag"] == "InTransit"
    assert in_transit["notify"] is True
    assert entries[2][1]["sub_status"] == "Delivered_001"
    assert entries[2][1]["carrier_text"] == "Delivered to neighbour"


async def test_parcel_delivered_when_first_seen_gives_a_quiet_entry(
    db: Database, http: httpx.AsyncClient, shop: Shop
) -> None:
    with RussianPostDouble() as post:
        await shop.account(
            "russian_post", post.base_url, {"login": "rp-login", "password": "rp-password"}
        )
        sid = await shop.ship("RA644000009RU")
        post.set_history(
            "RA644000009RU",
            [
                (1, 1, "Прием", "Единичный", "2027-05-20T10:00:00.000+03:00", "101000", "Москва"),
                (
                    2,
                    1,
                    "Вручение",
                    "Вручение адресату",
                    "2027-05-25T12:00:00.000+03:00",
                    "420000",
                    "Казань",
                ),
            ],
        )
        await _round(db, http, FUTURE)
    shipment = await shop.get(sid)
    assert shipment.status is Status.DELIVERED
    assert shipment.quiet is True
    (entry,) = await shop.kinds(sid)
    assert entry[0] == "shipment_delivered"
    assert entry[1]["notify"] is False


async def test_pickup_point_reaches_the_timeline(
    db: Database, http: httpx.AsyncClient, shop: Shop
) -> None:
    with CdekDouble() as cdek:
        await shop.account(
            "cdek", cdek.base_url, {"client_id": "cdek-id", "client_secret": "cdek-secret"}
        )
        sid = await shop.ship("1106207299", country="RU", city="Kazan")  # CDEK by its shape
        cdek.set_statuses(
            "1106207299",
            [
                ("CREATED", "Создан", "2027-05-30T10:00:00+0300", "Москва"),
                (
                    "ACCEPTED_AT_PICK_UP_POINT",
                    "Принят на склад до востребования",
                    "2027-05-31T10:00:00+0300",
                    "Казань",
                ),
            ],
            delivery_point="KZN12",
        )
        await _round(db, http, FUTURE)
    ((kind, data),) = await shop.kinds(sid)
    assert kind == "shipment_available_for_pickup"
    assert data["pickup_point"] == "KZN12"
    assert data["carrier_text"] == "Принят на склад до востребования"


async def test_concurrency_limit_per_carrier_account(
    db: Database, http: httpx.AsyncClient, shop: Shop
) -> None:
    with CdekDouble(latency=0.05) as slow:
        await shop.account(
            "cdek",
            slow.base_url,
            {"client_id": "cdek-id", "client_secret": "cdek-secret"},
            max_concurrency=3,
            requests_per_second=500,
        )
        ids = [await shop.ship(f"77{n:08d}", metadata={"carrier": "cdek"}) for n in range(30)]
        for n in range(30):
            slow.set_statuses(
                f"77{n:08d}",
                [("SENT_TO_TRANSIT_CITY", "Отправлен", "2027-05-31T06:00:00+0300", "Москва")],
            )
        stats = await _round(db, http, FUTURE)
        assert slow.max_in_flight <= 3
        assert slow.max_in_flight >= 2  # and it did work in parallel
    assert stats.polled == 30
    assert max(stats.max_in_flight.values()) <= 3
    statuses = {(await shop.get(i)).status for i in ids}
    assert statuses == {Status.IN_TRANSIT}


async def test_aftership_parcels_are_read_fifty_per_request(
    db: Database, http: httpx.AsyncClient, aftership: AfterShipDouble, shop: Shop
) -> None:
    await shop.account("aftership", aftership.base_url, {"api_key": "as-key"})
    numbers = [f"BULK{n:08d}" for n in range(120)]
    ids = [await shop.ship(number) for number in numbers]
    for number in numbers[:-1]:  # the last one AfterShip does not track yet
        aftership.set_tracking(
            number,
            "InTransit",
            checkpoints=[("2027-05-31T06:00:00Z", "InTransit", "Hub", "Leipzig")],
        )
    stats = await _round(db, http, FUTURE)
    reads = [r for r in aftership.requests if r["method"] == "GET"]
    sizes = sorted(
        len(parse_qs(urlsplit(r["path"]).query)["tracking_numbers"][0].split(",")) for r in reads
    )
    assert sizes == [20, 50, 50]
    assert aftership.created == [numbers[-1]]  # registered with one POST of its own
    assert stats.polled == 120
    assert stats.requests == 4
    shipments = [await shop.get(i) for i in ids]
    assert {s.status for s in shipments[:-1]} == {Status.IN_TRANSIT}
    assert shipments[-1].status is Status.PENDING
    assert shipments[-1].last_error is None
    entries = await shop.kinds(ids[0])
    assert [kind for kind, _ in entries] == ["shipment_in_transit"]


async def test_429_holds_the_account_back_until_retry_after(
    db: Database, http: httpx.AsyncClient, shop: Shop
) -> None:
    with CdekDouble(rate_limit=5) as cdek:
        await shop.account(
            "cdek",
            cdek.base_url,
            {"client_id": "cdek-id", "client_secret": "cdek-secret"},
            max_concurrency=8,
            requests_per_second=1000,
        )
        ids = [await shop.ship(f"55{n:08d}", country="RU") for n in range(20)]
        for n in range(20):
            cdek.set_statuses(
                f"55{n:08d}", [("CREATED", "Создан", "2027-05-30T10:00:00+0300", "Москва")]
            )
        stats = await _round(db, http, FUTURE)
        assert stats.rate_limited > 0
        assert cdek.rate_limited > 0
        # Once limited, the round stops asking: at most the in-flight requests hit the 429.
        assert cdek.rate_limited <= 8
        async with db.session() as session:
            account = await session.scalar(
                select(CarrierAccount).where(CarrierAccount.installation_id == shop.installation_id)
            )
            assert account is not None
            assert account.blocked_until is not None
            assert account.blocked_until > FUTURE
        shipments = [await shop.get(i) for i in ids]
        limited = [s for s in shipments if s.status is Status.PENDING]
        assert limited
        for shipment in limited:
            assert shipment.poll_failures == 0  # a 429 is not a failure of the parcel
            assert shipment.next_poll_at is not None
            assert shipment.next_poll_at >= FUTURE + timedelta(seconds=1)
        # Still blocked: a parcel due now is held back without a request.
        late = await shop.ship("5599999999", country="RU")
        sent = len(cdek.requests)
        await _round(db, http, FUTURE)
        assert len(cdek.requests) == sent
        held = await shop.get(late)
        assert held.next_poll_at is not None
        assert held.next_poll_at >= account.blocked_until - timedelta(seconds=1)


async def test_failures_back_off_and_unknown_numbers_wait(
    db: Database, http: httpx.AsyncClient, aftership: AfterShipDouble, shop: Shop
) -> None:
    await shop.account("aftership", aftership.base_url, {"api_key": "as-key"})
    sid = await shop.ship("FAIL00000001")
    aftership.force_status.extend([500, 500])
    await _round(db, http, FUTURE)
    first = await shop.get(sid)
    assert first.poll_failures == 1
    assert first.next_poll_at == FUTURE + timedelta(minutes=5)
    assert "HTTP 500" in (first.last_error or "")
    await _round(db, http, FUTURE + timedelta(minutes=5))
    second = await shop.get(sid)
    assert second.poll_failures == 2
    assert second.next_poll_at == FUTURE + timedelta(minutes=15)

    other = await shop.ship("NOACCOUNT1", metadata={"carrier": "cdek"})
    await _round(db, http, FUTURE + timedelta(minutes=15))
    missing = await shop.get(other)
    assert "no cdek account" in (missing.last_error or "")
    assert missing.next_poll_at == FUTURE + timedelta(minutes=15, hours=6)
    recovered = await shop.get(sid)
    assert recovered.poll_failures == 0
    assert recovered.status is Status.PENDING  # AfterShip registered it: Pending


def test_carrier_account_validation() -> None:
    with pytest.raises(ValueError, match="needs client_secret"):
        accounts.validate("cdek", {"client_id": "x"}, None, 4)
    with pytest.raises(ValueError, match="no credential named"):
        accounts.validate("aftership", {"api_key": "k", "password": "p"}, None, 4)
    with pytest.raises(ValueError, match="not an http"):
        accounts.validate("aftership", {"api_key": "k"}, "ftp://x", 4)
    with pytest.raises(ValueError, match="has no API account"):
        accounts.validate("manual", {}, None, 4)
    assert accounts.validate("russian_post", {"login": "a", "password": "b"}, None, 4) == (
        "https://tracking.russianpost.ru/rtm34"
    )
    box = SecretBox("k", purpose=accounts.BOX_PURPOSE)
    assert box.decrypt(box.encrypt("x")) == "x"
