"""Flows, priority 2: triggers from the timeline (signed webhooks through the simulator,
and the couriers' `shipment_*` entries), waits in the shop's time zone, conditions, tags,
exits, re-entry, holdouts, time-driven triggers, pacing, and the durable schedule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from plugin.commerce.models import Order
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.flows import FlowError, validate_steps, validate_trigger
from plugin.messaging.intake import read_timeline, time_triggers
from plugin.messaging.models import Flow, FlowRun, Message, MessageStatus, RunStatus
from plugin.messaging.presets import PRESETS, ensure_presets
from plugin.messaging.runs import due_runs, pick_variant, visit
from plugin.messaging.sending import deliver
from plugin.profiles.models import Profile, ProfileTag
from plugin.saleor.models import Installation, InstallationStatus
from plugin.settings import Settings
from plugin.timeline.service import record
from tests.conftest import RunningApp, eventually, new_installation
from tests.messaging_doubles import SmtpServer, add_template, configure, make_customer
from tests.simulator import FakeShop

LAG = timedelta(seconds=30)
# Tests that move the clock use next year: the app's own tick (real time) then never finds
# their runs due before the test visits them itself.
NEXT_YEAR = utcnow().year + 1
NOTE = {"": {"subject": "News for {{ customer.first_name }}", "text": "Hi {{ promo_code }}"}}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
async def app_ctx() -> AsyncIterator[AppContext]:
    ctx = AppContext.create(Settings())
    await ctx.open()
    yield ctx
    await ctx.close()


async def _own_clock_installation(db: Database) -> int:
    """A shop the app's own tick leaves alone (not active): the test drives its clock."""
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        installation = await session.get(Installation, installation_id)
        assert installation is not None
        installation.status = InstallationStatus.REMOVED
    return installation_id


async def _flow(db: Database, installation_id: int, key: str, **values: Any) -> int:
    async with unit_of_work(db) as session:
        flow = Flow(
            installation_id=installation_id,
            key=key,
            name=key,
            enabled=True,
            marketing=values.pop("marketing", True),
            topic=values.pop("topic", "offers"),
            trigger=validate_trigger(values.pop("trigger")),
            steps=validate_steps(values.pop("steps")),
            exits=values.pop("exits", {}),
            reentry=values.pop("reentry", "no_overlap"),
            reentry_days=values.pop("reentry_days", 0),
            holdout_percent=values.pop("holdout_percent", 0),
        )
        session.add(flow)
        await session.flush()
        return flow.id


async def _entry(
    db: Database, installation_id: int, profile_id: int, kind: str, **values: Any
) -> None:
    async with unit_of_work(db) as session:
        await record(
            session,
            installation_id=installation_id,
            profile_id=profile_id,
            kind=kind,
            occurred_at=utcnow(),
            dedup_key=f"{kind}:{profile_id}:{utcnow().isoformat()}:{values}",
            **values,
        )


async def _intake(db: Database, installation_id: int, now: datetime) -> int:
    async with unit_of_work(db) as session:
        return await read_timeline(session, installation_id, now, LAG)


async def _runs(db: Database, flow_id: int) -> list[FlowRun]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(FlowRun).where(FlowRun.flow_id == flow_id).order_by(FlowRun.id)
            )
        )


async def _visit(db: Database, run_id: int, now: datetime) -> RunStatus | None:
    async with unit_of_work(db) as session:
        return await visit(session, run_id, now)


async def _messages(db: Database, run_id: int) -> list[Message]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(Message).where(Message.run_id == run_id).order_by(Message.id)
            )
        )


async def test_abandoned_checkout_series_through_signed_webhooks(
    app_server: RunningApp,
    saleor: Any,
    db: Database,
    installation_id: int,
    smtp: SmtpServer,
    app_ctx: AppContext,
) -> None:
    async with unit_of_work(db) as session:
        await ensure_presets(session, installation_id, utcnow())
        flow = await session.scalar(
            select(Flow).where(
                Flow.installation_id == installation_id, Flow.key == "abandoned-checkout"
            )
        )
        assert flow is not None
        assert not flow.enabled  # presets wait for the merchant
        flow.enabled = True
        flow_id = flow.id
    await configure(db, installation_id, smtp_url=smtp.url)

    shop = FakeShop(app_id=saleor.app_id)
    events = shop.create_customer(
        "lea@example.com", first_name="Léa", metadata={"marketing_consent_email": "true"}
    )
    user_id = events[0].object_id
    cart = shop.create_checkout(
        user_id=user_id, lines=[("Scarf", "SCARF-1", "Accessories", 1, 25.0)]
    )
    for event in events + cart:
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    # the app's own tick reads the timeline and starts the run; its first visit waits 1 h
    async def started() -> list[FlowRun]:
        runs = await _runs(db, flow_id)
        return [r for r in runs if r.step_index == 1]

    (run,) = await eventually(started, timeout=60)  # folds, a tick, a step: all real
    assert run.status is RunStatus.ACTIVE
    assert run.next_at is not None
    waited = run.next_at - run.started_at
    assert timedelta(hours=1) <= waited < timedelta(hours=1, minutes=1)

    hour_later = run.next_at + timedelta(seconds=1)
    await _visit(db, run.id, hour_later)
    (first,) = await _messages(db, run.id)
    assert first.template_key == "cart-reminder-1"
    assert first.idempotency_key == f"flow:{flow_id}:step:1:run:{run.id}"
    await deliver(app_ctx, first.id, now=hour_later)
    (mail,) = smtp.inbox.to("lea@example.com")
    assert mail["Subject"] == "You left something in your cart"
    body = mail.get_body(("html",))
    assert body is not None
    assert "1 × Scarf" in body.get_content()
    assert "Hello Léa" in body.get_content()
    # a repeated visit (a redelivered job) sends nothing more
    await _visit(db, run.id, hour_later)
    assert len(await _messages(db, run.id)) == 1

    # she buys: the next visit ends the series instead of reminding her
    for event in shop.complete_checkout(cart[0].object_id):
        assert (await saleor.adeliver(app_server.base_url, event)).status_code == 200

    async def ordered() -> bool:
        async with db.session() as session:
            return (
                await session.scalar(
                    select(Order.id).where(Order.installation_id == installation_id)
                )
                is not None
            )

    await eventually(ordered, timeout=60)
    await _visit(db, run.id, hour_later + timedelta(days=1))
    (done,) = await _runs(db, flow_id)
    assert done.status is RunStatus.EXITED
    assert done.outcome == "ordered since the trigger"
    assert len(await _messages(db, run.id)) == 1


async def test_parcel_delivered_starts_the_review_request(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _own_clock_installation(db)
    async with unit_of_work(db) as session:
        await ensure_presets(session, installation_id, utcnow())
        flows = {
            f.key: f
            for f in await session.scalars(
                select(Flow).where(Flow.installation_id == installation_id)
            )
        }
        assert set(flows) == {p.key for p in PRESETS}
        flows["review-request"].enabled = True
        flow_id = flows["review-request"].id
    await configure(db, installation_id, smtp_url=smtp.url)
    profile_id = await make_customer(db, installation_id, "rev@example.com", first_name="Rev")
    shipment = {
        "shipment_id": 7,
        "order_id": "T3JkZXI6MQ==",
        "tracking_number": "1Z999",
        "carrier": "ups",
        "status": "delivered",
    }
    await _entry(
        db,
        installation_id,
        profile_id,
        "shipment_in_transit",
        subject_type="shipment",
        data={**shipment, "status": "in_transit"},
    )
    await _entry(
        db,
        installation_id,
        profile_id,
        "shipment_delivered",
        subject_type="shipment",
        data=shipment,
    )
    now = utcnow()
    assert await _intake(db, installation_id, now) == 1
    assert await _intake(db, installation_id, now) == 0  # read twice, started once
    (run,) = await _runs(db, flow_id)
    assert run.trigger_key == "shipment:7:shipment_delivered"
    await _visit(db, run.id, now)
    later = now + timedelta(days=3, seconds=1)
    await _visit(db, run.id, later)
    (review,) = await _messages(db, run.id)
    await deliver(app_ctx, review.id, now=later)
    (mail,) = smtp.inbox.to("rev@example.com")
    text = mail.get_body(("plain",))
    assert text is not None
    assert "THANKS5" in text.get_content()


async def test_condition_tag_wait_until_shop_time_and_variants(db: Database) -> None:
    installation_id = await _own_clock_installation(db)
    await configure(db, installation_id, timezone="Europe/Paris")
    await add_template(db, installation_id, "note-a", NOTE)
    await add_template(db, installation_id, "note-b", NOTE)
    steps: list[dict[str, Any]] = [
        {"type": "condition", "rule": {"field": "tags", "op": "has", "value": "wholesale"}},
        {"type": "tag", "tag": "welcomed"},
        {"type": "wait", "until": "10:00"},
        {
            "type": "send",
            "channel": "email",
            "variants": [{"template": "note-a", "weight": 1}, {"template": "note-b"}],
        },
    ]
    flow_id = await _flow(
        db,
        installation_id,
        "wholesale",
        trigger={"type": "segment_entered", "segment": "vip"},
        steps=steps,
    )
    plain = await make_customer(db, installation_id, "plain@example.com", first_name="P")
    trade = await make_customer(db, installation_id, "trade@example.com", first_name="T")
    async with unit_of_work(db) as session:
        session.add(
            ProfileTag(
                installation_id=installation_id,
                profile_id=trade,
                tag="wholesale",
                created_at=utcnow(),
            )
        )
    for profile_id in (plain, trade):
        await _entry(db, installation_id, profile_id, "segment_entered", subject_id="vip")
        await _entry(db, installation_id, profile_id, "segment_entered", subject_id="other")
    now = datetime(NEXT_YEAR, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 in Paris
    assert await _intake(db, installation_id, now) == 2
    runs = {r.profile_id: r for r in await _runs(db, flow_id)}
    assert await _visit(db, runs[plain].id, now) is RunStatus.EXITED
    assert await _visit(db, runs[trade].id, now) is RunStatus.ACTIVE
    (exited, waiting) = (await _runs(db, flow_id))[0:2]
    assert exited.outcome == "condition of step 0 not met"
    assert waiting.next_at == datetime(NEXT_YEAR, 6, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    async with db.session() as session:
        tags = set(
            await session.scalars(select(ProfileTag.tag).where(ProfileTag.profile_id == trade))
        )
    assert tags == {"wholesale", "welcomed"}
    await _visit(db, waiting.id, waiting.next_at)
    (message,) = await _messages(db, waiting.id)
    expected_variant, expected_template = pick_variant(steps[3], flow_id, 3, trade)
    assert (message.variant, message.template_key) == (expected_variant, expected_template)
    assert (await _runs(db, flow_id))[1].status is RunStatus.COMPLETED
    # assignment is stable and spreads: over many customers both variants are used
    spread = {pick_variant(steps[3], flow_id, 3, pid)[0] for pid in range(1, 60)}
    assert spread == {"A", "B"}


async def test_reentry_policies_and_holdout(db: Database) -> None:
    installation_id = await _own_clock_installation(db)
    await configure(db, installation_id)
    await add_template(db, installation_id, "note", NOTE)
    send = [{"type": "wait", "days": 1}, {"type": "send", "template": "note"}]
    trigger = {"type": "event", "kinds": ["note_added"]}
    once = await _flow(db, installation_id, "once", trigger=trigger, steps=send, reentry="once")
    overlap = await _flow(db, installation_id, "overlap", trigger=trigger, steps=send)
    held = await _flow(
        db, installation_id, "held", trigger=trigger, steps=send, holdout_percent=100
    )
    profile_id = await make_customer(db, installation_id, "re@example.com", first_name="R")
    now = utcnow() + timedelta(days=400)
    await _entry(db, installation_id, profile_id, "note_added")
    await _intake(db, installation_id, now)
    for run in await _runs(db, overlap):
        await _visit(db, run.id, now)  # now waiting: still active
    await _entry(db, installation_id, profile_id, "note_added")
    await _intake(db, installation_id, now)
    assert len(await _runs(db, once)) == 1
    assert len(await _runs(db, overlap)) == 1  # not while the first is active
    controls = await _runs(db, held)  # each trigger is measured, none is sent
    assert [c.status for c in controls] == [RunStatus.HOLDOUT, RunStatus.HOLDOUT]
    assert await _visit(db, controls[0].id, now + timedelta(days=2)) is None
    assert await _messages(db, controls[0].id) == []
    # once the first run is over, no_overlap lets the next trigger in; `once` never does
    (first,) = await _runs(db, overlap)
    await _visit(db, first.id, now + timedelta(days=2))
    await _entry(db, installation_id, profile_id, "note_added")
    await _intake(db, installation_id, now + timedelta(days=2))
    assert len(await _runs(db, overlap)) == 2
    assert len(await _runs(db, once)) == 1


async def test_time_triggers_lapse_and_birthday(db: Database) -> None:
    installation_id = await _own_clock_installation(db)
    await configure(db, installation_id, timezone="UTC")
    await add_template(db, installation_id, "note", NOTE)
    send = [{"type": "send", "template": "note"}]
    lapse = await _flow(
        db,
        installation_id,
        "lapse",
        trigger={"type": "no_order_for_days", "days": 90},
        steps=send,
        reentry="cooldown",
        reentry_days=90,
    )
    birthday = await _flow(
        db, installation_id, "bday", trigger={"type": "date_field"}, steps=send, reentry="always"
    )
    now = datetime(NEXT_YEAR, 5, 17, 8, 0, tzinfo=UTC)
    sleeping = await make_customer(
        db, installation_id, "z@example.com", last_order_at=now - timedelta(days=91)
    )
    await make_customer(db, installation_id, "a@example.com", last_order_at=now - timedelta(days=5))
    born = await make_customer(
        db, installation_id, "b@example.com", saleor_metadata={"birthday": "1990-05-17"}
    )
    await make_customer(db, installation_id, "c@example.com", saleor_metadata={"birthday": "oops"})
    async with unit_of_work(db) as session:
        assert await time_triggers(session, installation_id, now) == 2
    async with unit_of_work(db) as session:  # hourly: the next tick does not re-check
        assert await time_triggers(session, installation_id, now + timedelta(minutes=5)) == 0
    assert [r.profile_id for r in await _runs(db, lapse)] == [sleeping]
    assert [r.profile_id for r in await _runs(db, birthday)] == [born]
    async with unit_of_work(db) as session:  # the same occasion never starts twice
        assert await time_triggers(session, installation_id, now + timedelta(hours=2)) == 0


async def test_cap_and_quiet_hours_postpone_never_drop(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _own_clock_installation(db)
    await configure(
        db,
        installation_id,
        smtp_url=smtp.url,
        timezone="UTC",
        caps={"email": {"16h": 1}},
        quiet_start_hour=21,
        quiet_end_hour=9,
    )
    await add_template(db, installation_id, "note", NOTE)
    trigger = {"type": "event", "kinds": ["note_added"]}
    one = await _flow(
        db, installation_id, "one", trigger=trigger, steps=[{"type": "send", "template": "note"}]
    )
    two = await _flow(
        db, installation_id, "two", trigger=trigger, steps=[{"type": "send", "template": "note"}]
    )
    profile_id = await make_customer(db, installation_id, "cap@example.com", first_name="C")
    await _entry(db, installation_id, profile_id, "note_added")
    noon = datetime(NEXT_YEAR, 6, 1, 12, 0, tzinfo=UTC)
    await _intake(db, installation_id, noon)
    (run_one,) = await _runs(db, one)
    (run_two,) = await _runs(db, two)
    await _visit(db, run_one.id, noon)
    await _visit(db, run_two.id, noon)
    (first,) = await _messages(db, run_one.id)
    (second,) = await _messages(db, run_two.id)
    await deliver(app_ctx, first.id, now=noon)
    await deliver(app_ctx, second.id, now=noon)
    async with db.session() as session:
        waiting = await session.get(Message, second.id)
    assert waiting is not None
    assert waiting.status is MessageStatus.QUEUED
    # 16 h after noon is 04:00, inside the quiet hours: the slot moves on to 09:00
    assert waiting.next_attempt_at == datetime(NEXT_YEAR, 6, 2, 9, 0, tzinfo=UTC)
    assert len(smtp.inbox.to("cap@example.com")) == 1
    await deliver(app_ctx, second.id, now=datetime(NEXT_YEAR, 6, 2, 9, 0, tzinfo=UTC))
    assert len(smtp.inbox.to("cap@example.com")) == 2


def test_flow_definitions_name_the_bad_part() -> None:
    with pytest.raises(FlowError, match=r"\$\.trigger\.type"):
        validate_trigger({"type": "when_i_say_so"})
    with pytest.raises(FlowError, match=r"\$\.trigger\.filter\.op"):
        validate_trigger(
            {"type": "order_paid", "filter": {"field": "city", "op": "gt", "value": 1}}
        )
    with pytest.raises(FlowError, match=r"\$\.steps\[1\]\.until"):
        validate_steps([{"type": "send", "template": "x"}, {"type": "wait", "until": "25:00"}])
    rule = {"field": "orders_count", "op": "gte", "value": 1}
    with pytest.raises(FlowError, match=r"\$\.steps\[0\]\.else"):
        validate_steps([{"type": "condition", "rule": rule, "else": 0}])
    with pytest.raises(FlowError, match=r"\$\.steps\[0\]\.variants"):
        validate_steps([{"type": "send", "variants": [{"template": "a"}]}])


@pytest.mark.postgres_only
async def test_due_runs_are_split_between_workers_with_skip_locked(db: Database) -> None:
    installation_id = await _own_clock_installation(db)
    await configure(db, installation_id)
    flow_id = await _flow(
        db,
        installation_id,
        "many",
        trigger={"type": "event", "kinds": ["note_added"]},
        steps=[{"type": "wait", "hours": 1}],
    )
    profile_id = await make_customer(db, installation_id, "many@example.com")
    async with unit_of_work(db) as session:
        for i in range(6):
            session.add(
                FlowRun(
                    installation_id=installation_id,
                    flow_id=flow_id,
                    profile_id=profile_id,
                    trigger_key=f"k{i}",
                    status=RunStatus.ACTIVE,
                    next_at=datetime(NEXT_YEAR, 1, 1, tzinfo=UTC),
                )
            )
    now = datetime(NEXT_YEAR, 1, 1, 0, 1, tzinfo=UTC)
    first_session, second_session = db.session(), db.session()
    try:
        first = await due_runs(first_session, now, limit=1000)
        # a second worker's tick is not blocked by the first one's locks: it skips them
        second = await asyncio.wait_for(due_runs(second_session, now, limit=1000), 5)
        await first_session.commit()
        await second_session.commit()
    finally:
        await first_session.close()
        await second_session.close()
    mine = {r.id for r in await _runs(db, flow_id)}
    assert mine <= set(first)
    assert not set(first) & set(second)
    async with unit_of_work(db) as session:  # claimed: not handed out again meanwhile
        assert not set(await due_runs(session, now, limit=100)) & mine


async def test_profiles_unknown_to_the_flow_are_left_alone(db: Database) -> None:
    """Segment entries of other segments and checkouts without lines start nothing."""
    installation_id = await _own_clock_installation(db)
    await configure(db, installation_id)
    flow_id = await _flow(
        db,
        installation_id,
        "carts",
        trigger={"type": "checkout_abandoned"},
        steps=[{"type": "wait", "hours": 1}],
    )
    profile_id = await make_customer(db, installation_id, "empty@example.com")
    await _entry(
        db, installation_id, profile_id, "checkout_created", subject_id="c1", data={"lines": 0}
    )
    await _entry(
        db, installation_id, profile_id, "checkout_updated", subject_id="c2", data={"lines": 2}
    )
    await _entry(
        db, installation_id, profile_id, "checkout_updated", subject_id="c2", data={"lines": 3}
    )
    await _intake(db, installation_id, utcnow())
    runs = await _runs(db, flow_id)
    assert [r.trigger_key for r in runs] == ["checkout:c2"]
    async with db.session() as session:
        assert await session.get(Profile, profile_id) is not None


async def test_parcel_notifications_are_transactional_per_status(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """The couriers' entries drive the preset parcel notifications: one message per
    status, its own template, no consent needed; a silenced parcel sends nothing."""
    installation_id = await _own_clock_installation(db)
    async with unit_of_work(db) as session:
        await ensure_presets(session, installation_id, utcnow())
        flow = await session.scalar(
            select(Flow).where(
                Flow.installation_id == installation_id, Flow.key == "shipment-updates"
            )
        )
        assert flow is not None
        flow.enabled = True
        flow_id = flow.id
    await configure(db, installation_id, smtp_url=smtp.url)
    profile_id = await make_customer(
        db, installation_id, "parcel@example.com", consent=False, first_name="Pat"
    )
    base = {"order_id": "T3JkZXI6Mg==", "tracking_number": "JD014600", "carrier": "dhl"}
    pickup = {"pickup_point": "Kiosk 4, Rue Haute", "pickup_hours": "9-19"}
    for shipment_id, status, extra in (
        (11, "out_for_delivery", {}),
        (11, "available_for_pickup", pickup),
        (12, "in_transit", {"notify": False}),
        (11, "attempt_fail", {}),  # not one of the preset's statuses
    ):
        await _entry(
            db,
            installation_id,
            profile_id,
            f"shipment_{status}",
            subject_type="shipment",
            subject_id=str(shipment_id),
            data={**base, **extra, "shipment_id": shipment_id, "status": status},
        )
    now = utcnow() + timedelta(days=366)  # the app's worker never finds these due
    assert await _intake(db, installation_id, now) == 2
    for run in await _runs(db, flow_id):
        await _visit(db, run.id, now)
        for message in await _messages(db, run.id):
            assert message.marketing is False
            await deliver(app_ctx, message.id, now=now)
    subjects = sorted(str(m["Subject"]) for m in smtp.inbox.to("parcel@example.com"))
    assert subjects == ["Your parcel is available for pickup", "Your parcel is out for delivery"]
    pickup_mail = next(
        m for m in smtp.inbox.to("parcel@example.com") if "pickup" in str(m["Subject"])
    )
    body = pickup_mail.get_body(("html",))
    assert body is not None
    assert "Kiosk 4, Rue Haute" in body.get_content()
    assert pickup_mail["List-Unsubscribe"] is None  # transactional: no list to leave


def test_every_preset_template_renders() -> None:
    from plugin.messaging.presets import TEMPLATES
    from plugin.messaging.templates import render

    variables: dict[str, Any] = {
        "customer": {"first_name": "Ida", "email": "ida@example.com"},
        "checkout": {  # the keys plugin.messaging.variables.checkout_vars gives
            "id": "c1",
            "total": "25",
            "currency": "EUR",
            "restore_url": "https://shop.example/cart/c1",
            "lines": [
                {
                    "name": "Scarf",
                    "variant": "",
                    "sku": "S",
                    "quantity": 1,
                    "total": "25",
                    "image_url": "",
                }
            ],
        },
        "order": {"number": "42"},
        "shipment": {"tracking_number": "1Z", "carrier": "ups", "status": "delivered"},
        "recommendations": [{"name": "Gloves"}],
        "promo_code": "CODE10",
        "unsubscribe_url": "https://crm.example/l/u/x",
        "preferences_url": "https://crm.example/l/p/x",
    }
    for key, (_, contents) in TEMPLATES.items():
        shown = render(contents, None, variables)
        assert shown.subject, key
        assert "{{" not in shown.html + shown.text, key
