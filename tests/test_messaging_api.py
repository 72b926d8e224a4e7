"""Messaging through the GraphQL API: presets, templates (sandbox errors, preview with a
real customer, test send), flows (validation, switching on), settings, a customer's
messages, and flow stats with A/B significance and holdout uplift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from plugin.api.ids import to_global_id
from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Flow, FlowRun, Message, MessageStatus, RunStatus
from plugin.messaging.stats import two_proportion_p
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp, eventually
from tests.messaging_doubles import SmtpServer

FLOWS = "{ messageFlows { key enabled marketing topic trigger preset } }"
CREATE_TEMPLATE = """mutation($i: MessageTemplateInput!) { messageTemplateCreate(input: $i) {
  key name channel contents } }"""
PREVIEW = """query($k: String, $c: ID, $x: JSON) {
  messageTemplatePreview(key: $k, customerId: $c, contents: $x) { subject text html locale } }"""
CREATE_FLOW = """mutation($i: MessageFlowInput!) { messageFlowCreate(input: $i) {
  key enabled steps reentry } }"""
UPDATE_FLOW = """mutation($k: String!, $i: MessageFlowUpdateInput!) {
  messageFlowUpdate(key: $k, input: $i) { key enabled holdoutPercent } }"""
SETTINGS = """mutation($i: MessagingSettingsInput!) { messagingSettingsUpdate(input: $i) {
  timezone quietStartHour caps smtpUrl senderEmail } }"""
TEST_SEND = """mutation($k: String!, $to: String!, $c: ID) {
  messageTemplateTestSend(key: $k, to: $to, customerId: $c) }"""
MESSAGES = """query($c: ID!) { customerMessages(customerId: $c) {
  template state channel subject error attempts } }"""
STATS = """query($k: String!) { messageFlowStats(key: $k) {
  steps { stepIndex variant sent delivered opened clicked converted conversionRate pValue
          revenue { amount currency } }
  holdout { treated treatedConverted holdout holdoutConverted uplift pValue } } }"""
HELLO = {"": {"subject": "Hi {{ customer.first_name }}", "text": "Hello {{ customer.email }}"}}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


async def test_presets_templates_preview_and_test_send(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database, smtp: SmtpServer
) -> None:
    headers = staff_headers(saleor)

    async def presets() -> list[dict[str, Any]]:
        answer = await gql(app_server, FLOWS, headers=headers)
        return list(answer.data["messageFlows"])

    flows = {f["key"]: f for f in await eventually(presets)}  # made by the app's own tick
    assert {"abandoned-checkout", "review-request", "win-back", "birthday"} <= set(flows)
    assert not any(f["enabled"] for f in flows.values())
    assert flows["shipment-updates"]["marketing"] is False

    bad = await gql(
        app_server,
        CREATE_TEMPLATE,
        {"i": {"key": "hello", "name": "Hello", "contents": {"": {"subject": "{% if %}"}}}},
        headers,
    )
    assert bad.codes == ["INVALID_INPUT"]
    assert bad.body["errors"][0]["extensions"]["part"] == "subject"
    made = await gql(
        app_server,
        CREATE_TEMPLATE,
        {"i": {"key": "hello", "name": "Hello", "contents": HELLO}},
        headers,
    )
    assert made.data["messageTemplateCreate"]["channel"] == "EMAIL"
    again = await gql(
        app_server,
        CREATE_TEMPLATE,
        {"i": {"key": "hello", "name": "Hello", "contents": HELLO}},
        headers,
    )
    assert again.codes == ["CONFLICT"]

    pk = await seed_customer(db, installation_id, "prev@example.com", first_name="Pia", orders=1)
    customer = to_global_id("Customer", pk)
    shown = await gql(app_server, PREVIEW, {"k": "hello", "c": customer}, headers)
    assert shown.data["messageTemplatePreview"]["subject"] == "Hi Pia"
    assert shown.data["messageTemplatePreview"]["text"] == "Hello prev@example.com"
    unsaved = await gql(
        app_server, PREVIEW, {"x": {"": {"text": "{{ order.number }}"}}, "c": customer}, headers
    )
    assert unsaved.data["messageTemplatePreview"]["text"] == "1"  # her latest order
    broken = await gql(app_server, PREVIEW, {"x": {"": {"text": "{{ nope.x }}"}}}, headers)
    assert broken.codes == ["INVALID_INPUT"]
    bad_id = await gql(app_server, PREVIEW, {"k": "hello", "c": "eA=="}, headers)
    assert bad_id.codes == ["INVALID_INPUT"]

    unset = await gql(app_server, TEST_SEND, {"k": "hello", "to": "me@example.com"}, headers)
    assert unset.codes == ["INVALID_INPUT"]  # no SMTP server set up yet
    wrong = await gql(app_server, SETTINGS, {"i": {"timezone": "Mars/Olympus"}}, headers)
    assert wrong.codes == ["INVALID_INPUT"]
    caps = await gql(app_server, SETTINGS, {"i": {"caps": {"email": {"1h": 2}}}}, headers)
    assert caps.codes == ["INVALID_INPUT"]
    saved = await gql(
        app_server,
        SETTINGS,
        {
            "i": {
                "smtpUrl": f"smtp://user:pw@127.0.0.1:{smtp.port}",
                "timezone": "Europe/Paris",
                "quietStartHour": 22,
                "caps": {"email": {"16h": 1, "7d": 2}},
                "senderEmail": "shop@example.com",
            }
        },
        headers,
    )
    assert saved.data["messagingSettingsUpdate"]["smtpUrl"] == (
        f"smtp://user:***@127.0.0.1:{smtp.port}"
    )
    # the test SMTP server takes no AUTH: use the bare URL
    await gql(app_server, SETTINGS, {"i": {"smtpUrl": smtp.url}}, headers)
    sent = await gql(
        app_server, TEST_SEND, {"k": "hello", "to": "me@example.com", "c": customer}, headers
    )
    assert sent.body.get("errors") is None
    (mail,) = smtp.inbox.to("me@example.com")
    assert mail["Subject"] == "[Test] Hi Pia"

    no_apps = staff_headers(saleor, ["MANAGE_USERS"])
    forbidden = await gql(
        app_server,
        CREATE_TEMPLATE,
        {"i": {"key": "x", "name": "X", "contents": HELLO}},
        no_apps,
    )
    assert forbidden.codes == ["FORBIDDEN"]


async def test_flows_are_validated_and_switched_on(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = staff_headers(saleor)
    flow = {
        "key": "thanks",
        "name": "Thanks",
        "trigger": {"type": "order_paid"},
        "steps": [{"type": "wait", "hours": 2}, {"type": "send", "template": "hello"}],
        "exits": {"ordered": True},
    }
    bad_step = await gql(
        app_server,
        CREATE_FLOW,
        {"i": {**flow, "steps": [{"type": "wait", "until": "7pm"}]}},
        headers,
    )
    assert bad_step.codes == ["INVALID_INPUT"]
    assert bad_step.body["errors"][0]["extensions"]["path"] == "$.steps[0].until"
    bad_reentry = await gql(
        app_server, CREATE_FLOW, {"i": {**flow, "reentry": "cooldown"}}, headers
    )
    assert bad_reentry.body["errors"][0]["extensions"]["path"] == "$.reentryDays"
    made = await gql(app_server, CREATE_FLOW, {"i": flow}, headers)
    assert made.data["messageFlowCreate"]["enabled"] is False
    on = await gql(
        app_server,
        UPDATE_FLOW,
        {"k": "thanks", "i": {"enabled": True, "holdoutPercent": 10}},
        headers,
    )
    assert on.data["messageFlowUpdate"] == {"key": "thanks", "enabled": True, "holdoutPercent": 10}
    too_big = await gql(
        app_server, UPDATE_FLOW, {"k": "thanks", "i": {"holdoutPercent": 90}}, headers
    )
    assert too_big.codes == ["INVALID_INPUT"]
    missing = await gql(app_server, UPDATE_FLOW, {"k": "nope", "i": {"enabled": True}}, headers)
    assert missing.codes == ["NOT_FOUND"]


async def test_customer_messages_and_flow_stats(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    now = utcnow()
    customers = [
        await seed_customer(db, installation_id, f"ab{i}@example.com", first_name=f"C{i}")
        for i in range(8)
    ]
    async with unit_of_work(db) as session:
        flow = Flow(
            installation_id=installation_id,
            key="ab",
            name="A/B",
            trigger={"type": "order_paid"},
            steps=[{"type": "send", "variants": [{"template": "a"}, {"template": "b"}]}],
        )
        session.add(flow)
        await session.flush()
        for i, profile_id in enumerate(customers):
            holdout = i >= 6
            run = FlowRun(
                installation_id=installation_id,
                flow_id=flow.id,
                profile_id=profile_id,
                trigger_key=f"t{i}",
                status=RunStatus.HOLDOUT if holdout else RunStatus.COMPLETED,
                started_at=now - timedelta(days=2),
            )
            session.add(run)
            await session.flush()
            if not holdout:
                session.add(
                    Message(
                        installation_id=installation_id,
                        idempotency_key=f"ab-{i}",
                        profile_id=profile_id,
                        flow_id=flow.id,
                        run_id=run.id,
                        step_index=0,
                        variant="A" if i % 2 == 0 else "B",
                        channel=Channel.EMAIL,
                        template_key="a" if i % 2 == 0 else "b",
                        status=MessageStatus.SENT,
                        subject="Hello",
                        sent_at=now - timedelta(days=2),
                        opened_at=now - timedelta(days=1) if i < 4 else None,
                    )
                )
            # variant A's customers 0, 2, 4 and holdout customer 6 buy the next day
            if i in (0, 2, 4, 6):
                session.add(
                    Order(
                        installation_id=installation_id,
                        saleor_id=f"ab-order-{i}",
                        profile_id=profile_id,
                        status="UNFULFILLED",
                        currency="EUR",
                        total_gross=Decimal("40.00"),
                        placed_at=now - timedelta(days=1),
                        source_updated_at=now - timedelta(days=1),
                    )
                )
    answer = await gql(app_server, STATS, {"k": "ab"}, headers)
    stats = answer.data["messageFlowStats"]
    a, b = stats["steps"]
    assert (a["variant"], a["sent"], a["opened"], a["converted"]) == ("A", 3, 2, 3)
    assert a["revenue"] == [{"amount": "120.0000", "currency": "EUR"}]
    assert (b["variant"], b["sent"], b["converted"], b["conversionRate"]) == ("B", 3, 0, 0.0)
    assert b["pValue"] == pytest.approx(two_proportion_p(0, 3, 3, 3))
    assert stats["holdout"] == {
        "treated": 6,
        "treatedConverted": 3,
        "holdout": 2,
        "holdoutConverted": 1,
        "uplift": pytest.approx(0.0),
        "pValue": pytest.approx(1.0),
    }
    unknown = await gql(app_server, STATS, {"k": "nope"}, headers)
    assert unknown.codes == ["NOT_FOUND"]

    mine = await gql(app_server, MESSAGES, {"c": to_global_id("Customer", customers[0])}, headers)
    assert mine.data["customerMessages"] == [
        {
            "template": "a",
            "state": "SENT",
            "channel": "EMAIL",
            "subject": "Hello",
            "error": None,
            "attempts": 0,
        }
    ]
