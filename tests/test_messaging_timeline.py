"""What the flows read from and write to the customer's timeline beyond sends: an order
placed after a marketing message is that message's conversion (on the timeline, with its
revenue), an abandoned checkout's wait counts from the cart's last change, and win-back
waits the shop's typical interval between orders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from plugin.commerce.models import Order
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.flows import FlowError, validate_trigger
from plugin.messaging.intake import read_timeline, time_triggers
from plugin.messaging.models import Channel, Flow, FlowRun, Message, MessageStatus, RunStatus
from plugin.messaging.presets import ensure_presets
from plugin.messaging.runs import visit
from plugin.messaging.sending import MessageRequest, deliver, queue
from plugin.messaging.stats import flow_stats
from plugin.messaging.typical import typical_interval_days
from plugin.saleor.models import Installation, InstallationStatus
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record
from tests.conftest import new_installation
from tests.messaging_doubles import SmtpServer, add_template, configure, make_customer

LAG = timedelta(seconds=30)
NEXT_YEAR = utcnow().year + 1  # the app's own tick (real time) never finds these due
T0 = datetime(NEXT_YEAR, 3, 2, 10, 0, tzinfo=UTC)
NOTE = {"": {"subject": "Spring is here, {{ customer.first_name }}", "text": "Hi"}}


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


async def _own_clock_shop(db: Database) -> int:
    """Not active: the app's tick leaves it alone and the test drives the intake."""
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        installation = await session.get(Installation, installation_id)
        assert installation is not None
        installation.status = InstallationStatus.REMOVED
    return installation_id


async def _entry(
    db: Database, installation_id: int, profile_id: int, kind: str, at: datetime, **values: Any
) -> None:
    async with unit_of_work(db) as session:
        await record(
            session,
            installation_id=installation_id,
            profile_id=profile_id,
            kind=kind,
            occurred_at=at,
            dedup_key=f"{kind}:{profile_id}:{at.isoformat()}",
            **values,
        )


async def _intake(db: Database, installation_id: int, now: datetime) -> int:
    async with unit_of_work(db) as session:
        return await read_timeline(session, installation_id, now, LAG)


async def _order(
    db: Database,
    installation_id: int,
    profile_id: int,
    saleor_id: str,
    at: datetime,
    *,
    status: str = "UNFULFILLED",
    charged: str = "0",
    refunded: str = "0",
) -> None:
    async with unit_of_work(db) as session:
        session.add(
            Order(
                installation_id=installation_id,
                saleor_id=saleor_id,
                number=saleor_id.removeprefix("order-"),
                profile_id=profile_id,
                status=status,
                currency="EUR",
                total_gross=Decimal("59.90"),
                total_charged=Decimal(charged),
                total_refunded=Decimal(refunded),
                placed_at=at,
                source_updated_at=at,
            )
        )
    await _entry(
        db, installation_id, profile_id, "order_created", at,
        subject_type="order", subject_id=saleor_id,
    )  # fmt: skip


async def test_an_order_after_a_marketing_message_is_its_conversion_on_the_timeline(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _own_clock_shop(db)
    await configure(db, installation_id, smtp_url=smtp.url, attribution_days=5)
    await add_template(db, installation_id, "spring", NOTE)
    profile_id = await make_customer(db, installation_id, "buyer@example.com", first_name="Bo")
    async with unit_of_work(db) as session:
        message_id = await queue(
            session,
            MessageRequest(installation_id, profile_id, "spring-1", Channel.EMAIL, "spring", True),
            T0,
        )
    assert message_id is not None
    await deliver(app_ctx, message_id, now=T0)

    await _order(db, installation_id, profile_id, "order-1001", T0 + timedelta(days=2))
    await _order(db, installation_id, profile_id, "order-1002", T0 + timedelta(days=9))
    await _intake(db, installation_id, T0 + timedelta(days=10))
    await _intake(db, installation_id, T0 + timedelta(days=10))  # read again: no double

    async with db.session() as session:
        message = await session.get(Message, message_id)
        first = await session.scalar(select(Order).where(Order.saleor_id == "order-1001"))
        converted = list(
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.profile_id == profile_id,
                    TimelineEntry.kind == "message_converted",
                )
            )
        )
    assert message is not None
    assert first is not None
    assert message.status is MessageStatus.SENT
    assert (message.converted_order_id, message.revenue, message.currency) == (
        first.id,
        Decimal("59.90"),
        "EUR",
    )
    (entry,) = converted  # the second order came after the 5-day window
    assert entry.subject_id == str(message_id)
    assert entry.occurred_at == T0 + timedelta(days=2)
    assert entry.summary.startswith("Order #1001 (")
    assert "Spring is here, Bo" in entry.summary
    assert entry.data is not None
    assert (entry.data["order_id"], entry.data["currency"]) == ("order-1001", "EUR")
    assert Decimal(entry.data["revenue"]) == Decimal("59.90")


async def test_a_cancelled_order_converts_for_the_money_the_shop_kept(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """Issue 15.6: a cancelled order whose charge was never (fully) refunded is still money
    the shop kept, so it is the message's conversion for that money — on the message, its
    timeline entry and the flow's statistics alike; a cancelled order that kept nothing, a
    draft and an expired order convert nothing."""
    installation_id = await _own_clock_shop(db)
    await configure(db, installation_id, smtp_url=smtp.url, attribution_days=5)
    await add_template(db, installation_id, "spring", NOTE)
    profile_id = await make_customer(db, installation_id, "kept@example.com", first_name="Al")
    async with unit_of_work(db) as session:
        flow = Flow(
            installation_id=installation_id,
            key="spring",
            name="Spring",
            trigger={"type": "order_paid"},
            steps=[{"type": "send", "template": "spring"}],
        )
        session.add(flow)
        await session.flush()
        flow_id = flow.id
        run = FlowRun(
            installation_id=installation_id,
            flow_id=flow_id,
            profile_id=profile_id,
            trigger_key="spring-run",
            status=RunStatus.COMPLETED,
            started_at=T0,
        )
        session.add(run)
        await session.flush()
        request = MessageRequest(
            installation_id, profile_id, "spring-kept", Channel.EMAIL, "spring", True,
            flow_id=flow_id, run_id=run.id, step_index=0,
        )  # fmt: skip
        message_id = await queue(session, request, T0)
    assert message_id is not None
    await deliver(app_ctx, message_id, now=T0)

    day = timedelta(days=1)
    cancelled = {"status": "CANCELED", "charged": "59.90"}
    await _order(
        db, installation_id, profile_id, "order-2001", T0 + day, refunded="59.90", **cancelled
    )
    await _order(db, installation_id, profile_id, "order-2002", T0 + 2 * day, status="DRAFT")
    await _order(db, installation_id, profile_id, "order-2003", T0 + 2 * day, status="EXPIRED")
    await _order(
        db, installation_id, profile_id, "order-2004", T0 + 3 * day, refunded="10", **cancelled
    )
    await _intake(db, installation_id, T0 + 4 * day)

    async with db.session() as session:
        message = await session.get(Message, message_id)
        kept = await session.scalar(select(Order).where(Order.saleor_id == "order-2004"))
        entries = list(
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.profile_id == profile_id,
                    TimelineEntry.kind == "message_converted",
                )
            )
        )
        (step,), uplift = await flow_stats(session, installation_id, flow_id)
    assert message is not None
    assert kept is not None
    assert (message.converted_order_id, message.revenue, message.currency) == (
        kept.id,
        Decimal("49.90"),  # 59.90 charged − 10 refunded
        "EUR",
    )
    (entry,) = entries
    assert entry.data is not None
    assert (entry.data["order_id"], Decimal(entry.data["revenue"])) == (
        "order-2004",
        Decimal("49.90"),
    )
    assert (step.sent, step.converted, step.revenue) == (1, 1, {"EUR": Decimal("49.90")})
    assert (uplift.treated, uplift.treated_converted) == (1, 1)


async def test_abandoned_checkout_waits_from_the_last_change_and_ends_when_emptied(
    db: Database,
) -> None:
    installation_id = await _own_clock_shop(db)
    async with unit_of_work(db) as session:
        await ensure_presets(session, installation_id, T0)
        flow = await session.scalar(
            select(Flow).where(
                Flow.installation_id == installation_id, Flow.key == "abandoned-checkout"
            )
        )
        assert flow is not None
        flow.enabled = True
        flow_id = flow.id
    await configure(db, installation_id)
    profile_id = await make_customer(db, installation_id, "cart@example.com", first_name="C")
    checkout = {"subject_type": "checkout", "subject_id": "Q2hlY2tvdXQ6MQ=="}
    await _entry(
        db, installation_id, profile_id, "checkout_created", T0, data={"lines": 1}, **checkout
    )
    assert await _intake(db, installation_id, T0) == 1
    async with db.session() as session:
        (run,) = await session.scalars(select(FlowRun).where(FlowRun.flow_id == flow_id))
    async with unit_of_work(db) as session:
        await visit(session, run.id, T0)

    # 40 minutes later she adds a scarf: "no order within 1 h" counts from now on
    changed = T0 + timedelta(minutes=40)
    await _entry(
        db, installation_id, profile_id, "checkout_updated", changed, data={"lines": 2}, **checkout
    )
    assert await _intake(db, installation_id, changed) == 0  # the same run, not a new one
    async with db.session() as session:
        moved = await session.get(FlowRun, run.id)
    assert moved is not None
    assert moved.next_at == changed + timedelta(hours=1)
    async with unit_of_work(db) as session:  # an hour after the first change: too early
        await visit(session, run.id, T0 + timedelta(hours=1, seconds=1))
        assert (await session.scalars(select(Message).where(Message.run_id == run.id))).all() == []
    async with unit_of_work(db) as session:
        await visit(session, run.id, changed + timedelta(hours=1, seconds=1))
        (reminder,) = await session.scalars(select(Message).where(Message.run_id == run.id))
    assert reminder.template_key == "cart-reminder-1"

    # the cart is emptied before the second reminder: the series ends
    emptied = changed + timedelta(hours=3)
    await _entry(
        db, installation_id, profile_id, "checkout_updated", emptied, data={"lines": 0}, **checkout
    )
    await _intake(db, installation_id, emptied)
    async with db.session() as session:
        ended = await session.get(FlowRun, run.id)
        runs = (await session.scalars(select(FlowRun).where(FlowRun.flow_id == flow_id))).all()
    assert ended is not None
    assert (ended.status, ended.outcome) == (RunStatus.EXITED, "checkout emptied")
    assert len(runs) == 1


async def test_win_back_waits_the_shops_typical_interval_between_orders(db: Database) -> None:
    installation_id = await _own_clock_shop(db)
    async with unit_of_work(db) as session:
        await ensure_presets(session, installation_id, T0)
        flow = await session.scalar(
            select(Flow).where(Flow.installation_id == installation_id, Flow.key == "win-back")
        )
        assert flow is not None
        assert flow.trigger == {"type": "no_order_for_days", "days": "typical", "default_days": 90}
        flow.enabled = True
        flow_id = flow.id
    await configure(db, installation_id)
    # too few repeat purchases: the preset's 90 days
    async with db.session() as session:
        assert await typical_interval_days(session, installation_id, 90) == 90
    # ten regulars buying every 30 days: the shop's rhythm is a month
    for i in range(10):
        regular = await make_customer(db, installation_id, f"regular{i}@example.com")
        for n in range(3):
            at = T0 - timedelta(days=200 - 30 * n, hours=i)
            async with unit_of_work(db) as session:
                session.add(
                    Order(
                        installation_id=installation_id,
                        saleor_id=f"o-{i}-{n}",
                        profile_id=regular,
                        status="FULFILLED",
                        currency="EUR",
                        placed_at=at,
                        source_updated_at=at,
                    )
                )
    async with db.session() as session:
        assert await typical_interval_days(session, installation_id, 90) == 30
    lapsed = await make_customer(
        db, installation_id, "lapsed@example.com", last_order_at=T0 - timedelta(days=32)
    )
    await make_customer(
        db, installation_id, "recent@example.com", last_order_at=T0 - timedelta(days=20)
    )
    async with unit_of_work(db) as session:
        assert await time_triggers(session, installation_id, T0) == 1
    async with unit_of_work(db) as session:  # an hour later: the same lapse, no new run
        assert await time_triggers(session, installation_id, T0 + timedelta(hours=1)) == 0
    async with db.session() as session:
        (run,) = await session.scalars(select(FlowRun).where(FlowRun.flow_id == flow_id))
    assert run.profile_id == lapsed
    assert run.trigger_key.startswith("lapse:typical:")
    with pytest.raises(FlowError, match=r"\$\.trigger\.days"):
        validate_trigger({"type": "no_order_for_days", "days": "often"})
    with pytest.raises(FlowError, match=r"\$\.trigger\.default_days"):
        validate_trigger({"type": "no_order_for_days", "days": "typical", "default_days": -1})
