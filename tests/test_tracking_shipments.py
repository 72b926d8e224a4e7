"""Shipments follow Saleor's fulfillment webhooks end to end through the app: created
with a detected carrier, reset on a new tracking number, stopped on cancellation; staff
drive the manual carrier through fulfillment metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from plugin.db.engine import Database
from plugin.timeline.models import TimelineEntry
from plugin.tracking.detection import Detected, detect, normalise_carrier
from plugin.tracking.models import Shipment
from plugin.tracking.statuses import Status
from tests.conftest import RunningApp, eventually
from tests.simulator import Event, FakeShop

LINES = [("Linen shirt", "SHIRT-L", "Apparel", 1, 49.0)]
# Shops live in the future: the app's own tick (real time) never finds their parcels due.
FUTURE = datetime(2027, 9, 1, 9, 0, tzinfo=UTC)


def test_detection_order_of_clues() -> None:
    assert detect("RA644000001RU") == detect("RA644000001RU", default="aftership")
    assert detect("RA644000001RU").carrier == "russian_post"
    assert detect("RA644000001RU").source == "pattern"
    assert detect("1106207236", country="RU").carrier == "cdek"
    assert detect("1Z999AA10123456784").carrier == "aftership"
    assert detect("1Z999AA10123456784").source == "pattern"
    by_method = detect("1Z999AA10123456784", shipping_method="СДЭК до пункта выдачи")
    assert (by_method.carrier, by_method.source) == ("cdek", "shipping_method")
    by_meta = detect(
        "1106207236",
        shipping_method="CDEK courier",
        fulfillment_metadata={"carrier": "Russian Post"},
    )
    assert (by_meta.carrier, by_meta.source) == ("russian_post", "metadata")
    # An unknown carrier name in metadata is no clue; the next one decides.
    assert detect("RA644000001RU", order_metadata={"carrier": "pigeon"}).source == "pattern"
    assert normalise_carrier("russian-post") == "russian_post"


def test_a_bare_number_is_read_with_the_country_and_method_or_left_unknown() -> None:
    """A US `1234567890` was guessed as CDEK (issue 15.7): ten digits are CDEK's only on
    the way to a country CDEK serves; with no clue the carrier is `unknown`."""
    assert detect("1234567890", country="US") == Detected("aftership", "unknown")
    assert detect("1234567890") == Detected("aftership", "unknown")
    assert detect("1234567890", country="kz") == Detected("cdek", "pattern")
    assert detect("12345678901234", country="US").source == "unknown"
    assert detect("12345678901234", country="RU") == Detected("russian_post", "pattern")
    ups = detect("1234567890", country="US", shipping_method="UPS Ground")
    assert ups == Detected("aftership", "shipping_method")
    # Whole words only: "pickups" names no carrier.
    assert detect("1234567890", country="US", shipping_method="Free pickups").source == "unknown"
    assert detect("1234567890", country="US", shipping_method="СДЭК курьер").carrier == "cdek"
    assert detect("EE123456785US").source == "pattern"  # a US postal item: the aggregator's


async def _deliver(saleor: Any, app: RunningApp, events: list[Event]) -> None:
    for event in events:
        response = await saleor.adeliver(app.base_url, event)
        assert response.status_code == 200, response.text


async def _shipment(db: Database, installation_id: int, fulfillment_id: str) -> Shipment | None:
    async with db.session() as session:
        found: Shipment | None = await session.scalar(
            select(Shipment).where(
                Shipment.installation_id == installation_id,
                Shipment.fulfillment_saleor_id == fulfillment_id,
            )
        )
        return found


def _order(shop: FakeShop, method: str | None = None, **kw: Any) -> tuple[str, list[Event]]:
    events = shop.create_order(
        email="ann@example.com", lines=LINES, city="Kazan", country="RU", **kw
    )
    order_id = events[0].object_id
    if method is not None:
        shop.orders[order_id]["shippingMethodName"] = method
    return order_id, events


async def test_fulfillment_with_tracking_number_becomes_a_shipment(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    shop = FakeShop(now=FUTURE)
    order_id, events = _order(shop, "CDEK to pickup point")
    shipped = shop.fulfill(order_id, tracking_number="1234567890")
    await _deliver(saleor, app_server, events + shipped)
    fulfillment_id = shipped[0].object_id

    async def created() -> Shipment | None:
        return await _shipment(db, installation_id, fulfillment_id)

    shipment = await eventually(created)
    assert (shipment.carrier, shipment.carrier_source) == ("cdek", "shipping_method")
    assert shipment.status is Status.PENDING
    assert shipment.tracking_number == "1234567890"
    assert shipment.order_saleor_id == order_id
    assert shipment.profile_id is not None
    assert (shipment.destination_city, shipment.destination_country) == ("KAZAN", "RU")
    assert shipment.next_poll_at == shipped[0].issued_at  # polled at the next tick

    # A new tracking number: a new parcel for the carrier, same shipment.
    await _deliver(saleor, app_server, shop.set_tracking_number(fulfillment_id, "RA644000001RU"))

    async def renumbered() -> Shipment | None:
        found = await _shipment(db, installation_id, fulfillment_id)
        return found if found and found.tracking_number == "RA644000001RU" else None

    shipment = await eventually(renumbered)
    # The shipping method still names CDEK: it outranks the number's shape.
    assert shipment.carrier == "cdek"

    await _deliver(saleor, app_server, shop.cancel_fulfillment(fulfillment_id))

    async def cancelled() -> Shipment | None:
        found = await _shipment(db, installation_id, fulfillment_id)
        return found if found and found.cancelled_at is not None else None

    shipment = await eventually(cancelled)
    assert shipment.next_poll_at is None


async def test_no_tracking_number_no_shipment_until_one_is_set(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    shop = FakeShop(now=FUTURE)
    order_id, events = _order(shop, metadata={"carrier": "russian_post"})
    shipped = shop.fulfill(order_id)
    fulfillment_id = shipped[0].object_id
    later = shop.set_tracking_number(fulfillment_id, "80085123456789")
    await _deliver(saleor, app_server, events + shipped)

    async def folded() -> bool:
        async with db.session() as session:
            from plugin.commerce.models import Fulfillment

            return (
                await session.scalar(
                    select(Fulfillment.id).where(Fulfillment.saleor_id == fulfillment_id)
                )
            ) is not None

    await eventually(folded)
    assert await _shipment(db, installation_id, fulfillment_id) is None
    await _deliver(saleor, app_server, later)

    async def created() -> Shipment | None:
        return await _shipment(db, installation_id, fulfillment_id)

    shipment = await eventually(created)
    assert (shipment.carrier, shipment.carrier_source) == ("russian_post", "metadata")


async def test_manual_carrier_status_from_saleor_metadata(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    shop = FakeShop(now=FUTURE)
    order_id, events = _order(shop, "Own courier")
    shipped = shop.fulfill(order_id, tracking_number="OWN-1")
    fulfillment_id = shipped[0].object_id
    events += shipped
    events += shop.set_fulfillment_metadata(fulfillment_id, {"carrier": "manual"})
    events += shop.set_fulfillment_metadata(
        fulfillment_id,
        {"tracking_status": "out_for_delivery", "tracking_status_text": "Courier Ivan, 14-16h"},
    )
    events += shop.set_fulfillment_metadata(fulfillment_id, {"tracking_status": "nonsense"})
    await _deliver(saleor, app_server, events)

    async def moving() -> Shipment | None:
        found = await _shipment(db, installation_id, fulfillment_id)
        return found if found and found.status is Status.OUT_FOR_DELIVERY else None

    shipment = await eventually(moving)
    assert shipment.carrier == "manual"
    assert shipment.next_poll_at is None  # nobody to poll
    async with db.session() as session:
        entries = list(
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.installation_id == installation_id,
                    TimelineEntry.subject_type == "shipment",
                )
            )
        )
    assert [e.kind for e in entries] == ["shipment_out_for_delivery"]
    data = entries[0].data or {}
    assert data["carrier_text"] == "Courier Ivan, 14-16h"
    assert data["order_id"] == order_id
    assert data["tracking_number"] == "OWN-1"
    assert data["notify"] is True
    assert entries[0].subject_id == str(shipment.id)


async def test_older_snapshots_change_nothing(db: Database) -> None:
    """Saleor delivers late and twice: an older fulfillment snapshot never brings an old
    tracking number back."""
    from plugin.kit.after_commit import unit_of_work
    from plugin.tracking.shipments import follow_fulfillment
    from tests.conftest import new_installation

    installation_id = await new_installation(db)
    shop = FakeShop(now=FUTURE)
    order_id, _ = _order(shop)
    first = shop.fulfill(order_id, tracking_number="OLD-1")[0]
    second = shop.set_tracking_number(first.object_id, "NEW-2")[0]
    async with unit_of_work(db) as session:
        for event in (second, first, second):
            await follow_fulfillment(
                session, installation_id, event.payload, profile_id=None, issued_at=event.issued_at
            )
    shipment = await _shipment(db, installation_id, first.object_id)
    assert shipment is not None
    assert shipment.tracking_number == "NEW-2"
    assert shipment.source_updated_at == second.issued_at


async def test_a_us_parcel_with_a_bare_number_asks_staff_for_the_carrier(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    import httpx

    from tests.api import ALL_PERMISSIONS, dashboard_headers

    shop = FakeShop(now=FUTURE)
    events = shop.create_order(email="ann@example.com", lines=LINES, city="Austin", country="US")
    shipped = shop.fulfill(events[0].object_id, tracking_number="1234567890")
    await _deliver(saleor, app_server, events + shipped)

    async def created() -> Shipment | None:
        return await _shipment(db, installation_id, shipped[0].object_id)

    shipment = await eventually(created)
    assert (shipment.carrier, shipment.carrier_source) == ("aftership", "unknown")
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        page = await client.post(
            "/dashboard/fragments/deliveries",
            json={"params": {}},
            headers=dashboard_headers(saleor, user_permissions=ALL_PERMISSIONS),
        )
    assert page.status_code == 200
    assert "Unknown carrier, pick one" in page.text
    assert "Cdek" not in page.text.split("<tbody>")[1].split("<select")[0]
