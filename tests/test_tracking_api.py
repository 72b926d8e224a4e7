"""The tracking part of the GraphQL API (shipments on the customer card and the order,
staff setting a manual status, carrier accounts, delivery analytics) and the staff
alerts written back to Saleor as an order note and fulfillment metadata."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from graphql import parse, validate
from sqlalchemy import select

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.profiles.models import Profile
from plugin.saleor.client import load_query
from plugin.timeline.models import TimelineEntry
from plugin.tracking import accounts, alerts
from plugin.tracking.analytics import Row, report
from plugin.tracking.models import AlertOutbox, Shipment
from plugin.tracking.polling import poll_round
from plugin.tracking.shipments import follow_fulfillment
from plugin.tracking.statuses import Status
from tests.api import gql, staff_headers
from tests.carrier_doubles import AfterShipDouble
from tests.conftest import RunningApp, eventually
from tests.saleor_schema import saleor_schema
from tests.simulator import FakeShop

BOX = accounts.box("test-secret-key-not-for-production")
TOKENS = SecretBox("test-secret-key-not-for-production")
FUTURE = datetime(2027, 8, 1, 9, 0, tzinfo=UTC)
ID_RANGES = itertools.count(10_000, 10_000)

SHIPMENTS = """
query ($customer: ID, $order: String) {
  shipments(customerId: $customer, orderId: $order) {
    id trackingNumber carrier carrierSource status subStatus carrierText orderId customerId
    checkpoints { status message location occurredAt }
  }
}"""
STATUS_SET = """
mutation ($id: ID!, $status: ShipmentStatus!, $text: String, $point: String, $hours: String) {
  shipmentStatusSet(
    id: $id, status: $status, text: $text, pickupPoint: $point, pickupHours: $hours
  ) { status carrierText pickupPoint pickupHours }
}"""


def test_alert_documents_validate_against_saleor_schema() -> None:
    for name in ("order_note_add", "update_metadata"):
        assert validate(saleor_schema(), parse(load_query(name))) == []


async def _customer_shipment(
    db: Database, installation_id: int, number: str, carrier: str = "manual"
) -> tuple[int, int, str]:
    # Each call its own id range: FakeShop numbers fulfillments from its counter.
    shop = FakeShop(now=FUTURE, _counter=next(ID_RANGES))
    order = shop.create_order(email="zoe@example.com", lines=[("Lamp", "LAMP", "Home", 1, 30.0)])
    event = shop.fulfill(order[0].object_id, tracking_number=number)[0]
    payload: dict[str, Any] = event.payload
    payload["fulfillment"]["metadata"] = [{"key": "carrier", "value": carrier}]
    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id, email=f"{number.lower()}@example.com")
        session.add(profile)
        await session.flush()
        shipment = await follow_fulfillment(
            session, installation_id, payload, profile_id=profile.id, issued_at=event.issued_at
        )
        assert shipment is not None
        return shipment.id, profile.id, order[0].object_id


def _gid(kind: str, pk: int) -> str:
    import base64

    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


async def test_staff_set_manual_status_and_read_shipments(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    sid, profile_id, order_id = await _customer_shipment(db, installation_id, "MAN-100")
    headers = staff_headers(saleor)
    answer = await gql(
        app_server,
        STATUS_SET,
        {
            "id": _gid("Shipment", sid),
            "status": "AVAILABLE_FOR_PICKUP",
            "text": "At our shop",
            "point": "Shop, 1 Main St",
            "hours": "Mon-Fri 10-19",
        },
        headers,
    )
    assert answer.body.get("errors") is None, answer.body
    assert answer.data["shipmentStatusSet"] == {
        "status": "AVAILABLE_FOR_PICKUP",
        "carrierText": "At our shop",
        "pickupPoint": "Shop, 1 Main St",
        "pickupHours": "Mon-Fri 10-19",
    }
    card = await gql(app_server, SHIPMENTS, {"customer": _gid("Customer", profile_id)}, headers)
    (shipment,) = card.data["shipments"]
    assert shipment["carrier"] == "MANUAL"
    assert shipment["carrierSource"] == "metadata"
    assert shipment["orderId"] == order_id
    assert shipment["customerId"] == _gid("Customer", profile_id)
    assert [c["status"] for c in shipment["checkpoints"]] == ["AVAILABLE_FOR_PICKUP"]
    by_order = await gql(app_server, SHIPMENTS, {"order": order_id}, headers)
    assert [s["id"] for s in by_order.data["shipments"]] == [shipment["id"]]
    async with db.session() as session:
        entry = await session.scalar(
            select(TimelineEntry).where(
                TimelineEntry.subject_type == "shipment", TimelineEntry.subject_id == str(sid)
            )
        )
    assert entry is not None
    assert entry.kind == "shipment_available_for_pickup"
    assert (entry.data or {})["pickup_hours"] == "Mon-Fri 10-19"

    # Bad input is a clear error, never a 500.
    wrong = await gql(app_server, STATUS_SET, {"id": "bm9wZQ==", "status": "DELIVERED"}, headers)
    assert wrong.codes == ["INVALID_INPUT"]
    unknown = await gql(
        app_server, STATUS_SET, {"id": _gid("Shipment", 10**9), "status": "DELIVERED"}, headers
    )
    assert unknown.codes == ["NOT_FOUND"]
    too_long = await gql(
        app_server,
        STATUS_SET,
        {"id": _gid("Shipment", sid), "status": "DELIVERED", "text": "x" * 2000},
        headers,
    )
    assert too_long.codes == ["INVALID_INPUT"]
    bad_enum = await gql(
        app_server, STATUS_SET, {"id": _gid("Shipment", sid), "status": "LOST"}, headers
    )
    assert bad_enum.status == 200
    assert bad_enum.body["errors"]
    no_orders = staff_headers(saleor, ["MANAGE_USERS"])
    forbidden = await gql(
        app_server, SHIPMENTS, {"customer": _gid("Customer", profile_id)}, no_orders
    )
    assert forbidden.codes == ["FORBIDDEN"]


async def test_carrier_set_and_accounts(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    sid, _, _ = await _customer_shipment(db, installation_id, "CARRIER-1", carrier="aftership")
    headers = staff_headers(saleor)
    refused = await gql(
        app_server,
        STATUS_SET,
        {"id": _gid("Shipment", sid), "status": "DELIVERED"},
        headers,
    )
    assert refused.codes == ["INVALID_INPUT"]
    changed = await gql(
        app_server,
        "mutation ($id: ID!) { shipmentCarrierSet(id: $id, carrier: MANUAL) "
        "{ carrier carrierSource nextPollAt } }",
        {"id": _gid("Shipment", sid)},
        headers,
    )
    assert changed.data["shipmentCarrierSet"] == {
        "carrier": "MANUAL",
        "carrierSource": "staff",
        "nextPollAt": None,
    }

    configure = """
    mutation ($input: CarrierAccountInput!) {
      carrierAccountConfigure(input: $input) { carrier baseUrl webhookPath maxConcurrency }
    }"""
    missing = await gql(
        app_server,
        configure,
        {"input": {"carrier": "CDEK", "credentials": [{"key": "client_id", "value": "a"}]}},
        headers,
    )
    assert missing.codes == ["INVALID_INPUT"]
    assert "client_secret" in missing.body["errors"][0]["message"]
    made = await gql(
        app_server,
        configure,
        {
            "input": {
                "carrier": "CDEK",
                "credentials": [
                    {"key": "client_id", "value": "a"},
                    {"key": "client_secret", "value": "s3cret"},
                ],
                "maxConcurrency": 2,
            }
        },
        headers,
    )
    assert made.data["carrierAccountConfigure"]["baseUrl"] == "https://api.cdek.ru/v2"
    assert made.data["carrierAccountConfigure"]["webhookPath"].startswith("/api/tracking/webhooks/")
    listed = await gql(app_server, "{ carrierAccounts { carrier maxConcurrency } }", None, headers)
    assert listed.data["carrierAccounts"] == [{"carrier": "CDEK", "maxConcurrency": 2}]
    assert "s3cret" not in json.dumps(listed.body)
    no_apps = await gql(
        app_server,
        "{ carrierAccounts { carrier } }",
        None,
        staff_headers(saleor, ["MANAGE_ORDERS"]),
    )
    assert no_apps.codes == ["FORBIDDEN"]


def test_delivery_report_groups() -> None:
    day = datetime(2027, 3, 1, tzinfo=UTC)
    rows = [
        Row("cdek", "KAZAN", day, day + timedelta(days=2), False),
        Row("cdek", "Kazan", day, day + timedelta(days=4), True),
        Row("russian_post", "MOSCOW", day + timedelta(days=31), day + timedelta(days=41), False),
        Row("russian_post", None, day + timedelta(days=31), None, True),
    ]
    found = report(rows)
    assert (found.total.shipments, found.total.delivered, found.total.exceptions) == (4, 3, 2)
    assert found.total.exception_share == 0.5
    cdek, post = found.by_carrier
    assert (cdek.key, cdek.average_days, cdek.median_days, cdek.exception_share) == (
        "cdek",
        3.0,
        3.0,
        0.5,
    )
    assert (post.key, post.delivered, post.average_days) == ("russian_post", 1, 10.0)
    assert [(g.key, g.shipments) for g in found.by_city] == [
        ("Kazan", 2),
        ("Moscow", 1),
        ("Unknown", 1),
    ]
    assert [(g.key, g.average_days) for g in found.by_month] == [
        ("2027-03", 3.0),
        ("2027-04", 10.0),
    ]


async def test_delivery_analytics_query(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    shipped = datetime(2027, 2, 10, 12, tzinfo=UTC)
    async with unit_of_work(db) as session:
        for n, (carrier, days, exception) in enumerate(
            [("cdek", 3, False), ("cdek", 5, True), ("aftership", 2, False)]
        ):
            session.add(
                Shipment(
                    installation_id=installation_id,
                    fulfillment_saleor_id=f"RnVsZmlsbG1lbnQ6{n}an",
                    order_saleor_id="T3JkZXI6MQ==",
                    tracking_number=f"AN{n}",
                    carrier=carrier,
                    carrier_source="pattern",
                    status=Status.DELIVERED,
                    destination_city="LYON",
                    shipped_at=shipped,
                    status_changed_at=shipped + timedelta(days=days),
                    delivered_at=shipped + timedelta(days=days),
                    had_exception=exception,
                    source_updated_at=shipped,
                )
            )
    query = """
    query ($from: Date!, $to: Date!) {
      deliveryAnalytics(period: { from: $from, to: $to }) {
        total { shipments delivered exceptionShare averageDays }
        byCarrier { key averageDays exceptionShare }
        byCity { key shipments }
        byMonth { key medianDays }
      }
    }"""
    answer = await gql(
        app_server, query, {"from": "2027-02-01", "to": "2027-02-28"}, staff_headers(saleor)
    )
    assert answer.body.get("errors") is None, answer.body
    result = answer.data["deliveryAnalytics"]
    assert result["total"] == {
        "shipments": 3,
        "delivered": 3,
        "exceptionShare": 0.3333,
        "averageDays": 3.33,
    }
    assert result["byCarrier"] == [
        {"key": "aftership", "averageDays": 2.0, "exceptionShare": 0.0},
        {"key": "cdek", "averageDays": 4.0, "exceptionShare": 0.5},
    ]
    assert result["byCity"] == [{"key": "Lyon", "shipments": 3}]
    assert result["byMonth"] == [{"key": "2027-02", "medianDays": 3.0}]
    backwards = await gql(
        app_server, query, {"from": "2027-03-01", "to": "2027-02-01"}, staff_headers(saleor)
    )
    assert backwards.codes == ["INVALID_INPUT"]


async def test_alerts_are_written_back_to_saleor_once(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    with AfterShipDouble() as aftership:
        async with unit_of_work(db) as session:
            await accounts.configure(
                session,
                BOX,
                installation_id=installation_id,
                carrier="aftership",
                credentials={"api_key": "as-key"},
                base_url=aftership.base_url,
            )
        returned, _, returned_order = await _customer_shipment(
            db, installation_id, "RET0001", carrier="aftership"
        )
        stalled, _, stalled_order = await _customer_shipment(
            db, installation_id, "STALL001", carrier="aftership"
        )
        aftership.set_tracking(
            "RET0001",
            "Exception",
            subtag="Exception_011",
            checkpoints=[("2027-08-01T10:00:00Z", "Exception", "Returned to sender", "Berlin")],
        )
        aftership.set_tracking(
            "STALL001",
            "InTransit",
            checkpoints=[("2027-08-01T08:00:00Z", "InTransit", "Arrived at hub", "Leipzig")],
        )
        async with httpx.AsyncClient(timeout=10) as http:
            first = await poll_round(
                db, http, BOX, batch=100, stalled_days=5, clock=lambda: FUTURE + timedelta(hours=1)
            )
            assert returned in first.alerts
            # Six days later nothing moved: the stalled parcel raises its own alert.
            later = FUTURE + timedelta(days=6)
            async with unit_of_work(db) as session:
                for shipment in await alerts.stalled_candidates(
                    session, later, 5, installation_id=installation_id
                ):
                    await alerts.raise_alerts(session, shipment, later, 5)
            await alerts.send_pending(db, http, TOKENS, clock=lambda: later)
            # Nothing left: no second note.
            await alerts.send_pending(db, http, TOKENS, clock=lambda: later)

    def mutations(name: str) -> list[dict[str, Any]]:
        found = []
        for request in saleor.graphql_requests:
            body = json.loads(request["body"])
            if f"mutation {name}" in body["query"]:
                found.append(body["variables"])
        return found

    async def written() -> list[dict[str, Any]] | None:
        notes = mutations("OrderNoteAdd")
        return notes if len(notes) >= 2 else None

    notes = await eventually(written)
    assert saleor.invalid_queries == []
    by_order = {n["order"]: n["message"] for n in notes}
    assert len(notes) == 2
    assert "returned to the sender" in by_order[returned_order]
    assert "no movement" in by_order[stalled_order]
    assert "InTransit" in by_order[stalled_order]
    metadata = mutations("UpdateMetadata")
    assert len(metadata) == 2
    keys = {item["key"]: item["value"] for item in metadata[0]["input"]}
    assert set(keys) == {alerts.META_STATUS, alerts.META_ALERT}
    async with db.session() as session:
        after = await session.get(Shipment, returned)
        assert after is not None
        assert after.alerts_pending is False
        assert all(a["sent_at"] for a in (after.alerts or {}).values())


async def test_a_problem_set_by_staff_raises_the_staff_alert(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    sid, _, _ = await _customer_shipment(db, installation_id, "MAN-200")
    answer = await gql(
        app_server,
        STATUS_SET,
        {"id": _gid("Shipment", sid), "status": "EXCEPTION", "text": "Box damaged"},
        staff_headers(saleor),
    )
    assert answer.body.get("errors") is None, answer.body
    async with db.session() as session:
        queued = list(
            await session.scalars(select(AlertOutbox).where(AlertOutbox.shipment_id == sid))
        )
    assert [a.key.split(":")[0] for a in queued] == ["exception"]
    assert "Box damaged" in queued[0].message
