"""End to end: a fulfillment webhook with a tracking number → polls (Dramatiq jobs)
against the AfterShip double and its signed pushes → status changes → one timeline entry
per status for the mailings flows, and the staff alert as a note in the Saleor simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.timeline.models import TimelineEntry
from plugin.tracking.models import Shipment
from plugin.tracking.statuses import Status
from tests.api import gql, staff_headers
from tests.carrier_doubles import AfterShipDouble
from tests.conftest import RunningApp, eventually
from tests.simulator import FakeShop

CONFIGURE = """
mutation ($input: CarrierAccountInput!) {
  carrierAccountConfigure(input: $input) { webhookPath }
}"""


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


def _iso(hours_ago: float) -> str:
    return (utcnow() - timedelta(hours=hours_ago)).isoformat()


async def test_parcel_from_fulfillment_to_delivered(
    app_server: RunningApp,
    saleor: Any,
    installation_id: int,
    db: Database,
    aftership: AfterShipDouble,
) -> None:
    from jobs.tracking import tracking_tick

    configured = await gql(
        app_server,
        CONFIGURE,
        {
            "input": {
                "carrier": "AFTERSHIP",
                "baseUrl": aftership.base_url,
                "credentials": [
                    {"key": "api_key", "value": "as-key"},
                    {"key": "webhook_secret", "value": "as-secret"},
                ],
            }
        },
        staff_headers(saleor),
    )
    assert configured.body.get("errors") is None, configured.body
    webhook_path = configured.data["carrierAccountConfigure"]["webhookPath"]

    shop = FakeShop(now=utcnow() - timedelta(hours=30))
    events = shop.create_order(
        email="nina@example.com", lines=[("Boots", "BOOT-40", "Shoes", 1, 120.0)]
    )
    order_id = events[0].object_id
    events += shop.pay_order(order_id)
    shipped = shop.fulfill(order_id, tracking_number="1Z999AA10123450001")
    fulfillment_id = shipped[0].object_id
    number = "1Z999AA10123450001"
    for event in events + shipped:
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def shipment_in(status: Status) -> Shipment | None:
        async with db.session() as session:
            found = await session.scalar(
                select(Shipment).where(
                    Shipment.installation_id == installation_id,
                    Shipment.fulfillment_saleor_id == fulfillment_id,
                )
            )
        return found if found is not None and found.status is status else None

    await eventually(lambda: shipment_in(Status.PENDING))

    async def time_passes() -> None:
        """The schedule says "later"; the test is impatient."""
        async with unit_of_work(db) as session:
            await session.execute(
                update(Shipment)
                .where(Shipment.fulfillment_saleor_id == fulfillment_id)
                .values(next_poll_at=utcnow() - timedelta(seconds=1))
            )

    checkpoints = [(_iso(20), "InfoReceived", "Shipment information received", "Leipzig")]
    aftership.set_tracking(number, "InfoReceived", checkpoints=checkpoints)
    tracking_tick.send()
    await eventually(lambda: shipment_in(Status.INFO_RECEIVED))

    checkpoints.append((_iso(10), "InTransit", "Departed from facility", "Leipzig"))
    aftership.set_tracking(number, "InTransit", checkpoints=checkpoints, edd=_iso(-24)[:10])
    body, headers = aftership.webhook(number)
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        pushed = await client.post(webhook_path, content=body, headers=headers)
    assert pushed.status_code == 200, pushed.text
    await eventually(lambda: shipment_in(Status.IN_TRANSIT))

    checkpoints.append((_iso(2), "Exception", "Address incomplete, contact the courier", "Berlin"))
    aftership.set_tracking(number, "Exception", subtag="Exception_004", checkpoints=checkpoints)
    await time_passes()
    tracking_tick.send()
    await eventually(lambda: shipment_in(Status.EXCEPTION))

    checkpoints.append((_iso(0.5), "Delivered", "Delivered, signed by NINA", "Berlin"))
    aftership.set_tracking(number, "Delivered", subtag="Delivered_001", checkpoints=checkpoints)
    await time_passes()
    tracking_tick.send()
    delivered = await eventually(lambda: shipment_in(Status.DELIVERED))
    assert delivered.next_poll_at is None
    assert delivered.had_exception is True

    async with db.session() as session:
        entries = list(
            await session.scalars(
                select(TimelineEntry)
                .where(
                    TimelineEntry.installation_id == installation_id,
                    TimelineEntry.subject_type == "shipment",
                )
                .order_by(TimelineEntry.occurred_at)
            )
        )
    assert [e.kind for e in entries] == [
        "shipment_info_received",
        "shipment_in_transit",
        "shipment_exception",
        "shipment_delivered",
    ]
    assert {(e.data or {})["order_id"] for e in entries} == {order_id}
    assert entries[2].data is not None
    assert entries[2].data["carrier_text"] == "Address incomplete, contact the courier"
    assert entries[2].data["sub_status"] == "Exception_004"

    def sent(operation: str) -> list[dict[str, Any]]:
        found = []
        for request in saleor.graphql_requests:
            payload = json.loads(request["body"])
            if payload["query"].lstrip("# \n").find(f"mutation {operation}") >= 0:
                found.append(payload["variables"])
        return found

    async def noted() -> list[dict[str, Any]] | None:
        return sent("OrderNoteAdd") or None

    (note,) = await eventually(noted)
    assert note["order"] == order_id
    assert "delivery problem" in note["message"]
    assert "Address incomplete" in note["message"]
    (metadata,) = sent("UpdateMetadata")
    assert metadata["id"] == fulfillment_id
    written = {item["key"]: item["value"] for item in metadata["input"]}
    assert "Address incomplete" in written["crm_tracking_alert"]
    # the parcel's status when the alert went out: the exception, or (when the alert job
    # ran after the next poll) the delivery that followed it
    assert written["crm_tracking_status"] in ("Exception", "Delivered")
    assert saleor.invalid_queries == []


async def test_status_changes_reach_the_customer_by_email(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    """Through the mailings issue's transactional preset: one e-mail per status the flow
    covers, in the SMTP server, once each (staff set the statuses of a manual parcel)."""
    from plugin.messaging.models import Flow, Message
    from plugin.messaging.presets import ensure_presets
    from tests.messaging_doubles import SmtpServer, configure

    with SmtpServer() as smtp:
        async with unit_of_work(db) as session:
            await ensure_presets(session, installation_id, utcnow())
            flow = await session.scalar(
                select(Flow).where(
                    Flow.installation_id == installation_id, Flow.key == "shipment-updates"
                )
            )
            assert flow is not None
            flow.enabled = True
        await configure(db, installation_id, smtp_url=smtp.url)

        shop = FakeShop(now=utcnow() - timedelta(hours=2))
        events = shop.create_order(
            email="omar@example.com",
            lines=[("Kettle", "KETTLE-1", "Kitchen", 1, 40.0)],
            metadata={"carrier": "manual"},
        )
        shipped = shop.fulfill(events[0].object_id, tracking_number="OWN-777")
        for event in events + shipped:
            assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

        async def shipment_id() -> int | None:
            async with db.session() as session:
                found: int | None = await session.scalar(
                    select(Shipment.id).where(
                        Shipment.installation_id == installation_id,
                        Shipment.fulfillment_saleor_id == shipped[0].object_id,
                    )
                )
                return found

        sid = await eventually(shipment_id)
        gid = base64.b64encode(f"Shipment:{sid}".encode()).decode()
        mutation = """
        mutation ($id: ID!, $status: ShipmentStatus!) {
          shipmentStatusSet(id: $id, status: $status) { status }
        }"""
        for status in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "OUT_FOR_DELIVERY", "DELIVERED"):
            answer = await gql(
                app_server, mutation, {"id": gid, "status": status}, staff_headers(saleor)
            )
            assert answer.body.get("errors") is None, answer.body

        async def mailed() -> list[Any] | None:
            found = smtp.inbox.to("omar@example.com")
            return found if len(found) >= 3 else None

        mails = await eventually(mailed, timeout=60)
        assert len(mails) == 3  # the repeated OUT_FOR_DELIVERY is no new status
        for mail in mails:
            body = mail.get_body(("plain",))
            assert body is not None
            assert "OWN-777" in body.get_content()
        async with db.session() as session:
            templates = set(
                await session.scalars(
                    select(Message.template_key).where(Message.installation_id == installation_id)
                )
            )
        assert templates == {
            "shipment-in-transit",
            "shipment-out-for-delivery",
            "shipment-delivered",
        }
