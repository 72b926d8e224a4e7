"""Conversions on the customer's timeline: an order placed within the shop's attribution
window after a marketing message was sent goes to the latest such message (last touch, as in the
flow statistics), which records the order and its revenue, and the customer's timeline
says so.

Which orders convert, and for how much (`conversion_value`, the flow statistics use it too):
an order's total, as it is usually read before it is paid; a cancelled order only for the
money the shop kept of it (charged − refunded; a charge never refunded is still a sale, as
in the customer's total spent); never a draft or expired order, nor a cancelled one that
kept nothing.

Run by the tick's intake over the order entries it reads; repeatable (the message keeps
its first order, the timeline entry is unique per message and order).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Order
from plugin.kit.money import format_money
from plugin.messaging.models import Message, MessageStatus
from plugin.profiles.aggregates import NOT_PLACED
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record

ORDER_KIND = "order_created"
CANCELLED = ("CANCELED", "CANCELLED")


def conversion_value(order: Any) -> Decimal | None:
    """What an order is worth as a message's conversion; None: it is none (see above).
    `order` is an ORM row or any row with its status and money columns."""
    status = (order.status or "").upper()
    if status in NOT_PLACED:
        return None
    if status in CANCELLED:
        kept: Decimal = order.total_charged - order.total_refunded
        return kept if kept > 0 else None
    return Decimal(order.total_gross)


async def attribute_orders(
    session: AsyncSession, installation_id: int, after_id: int, up_to_id: int, window: timedelta
) -> int:
    """Attribute the orders placed by timeline entries in (after_id, up_to_id]; returns
    how many found a message."""
    if up_to_id <= after_id:
        return 0
    entries = await session.execute(
        select(TimelineEntry.profile_id, TimelineEntry.subject_id).where(
            TimelineEntry.installation_id == installation_id,
            TimelineEntry.kind == ORDER_KIND,
            TimelineEntry.id > after_id,
            TimelineEntry.id <= up_to_id,
        )
    )
    attributed = 0
    for profile_id, saleor_id in entries:
        order = await session.scalar(
            select(Order).where(
                Order.installation_id == installation_id, Order.saleor_id == str(saleor_id)
            )
        )
        if order is None:
            continue
        if await attribute(session, order, order.profile_id or profile_id, window):
            attributed += 1
    return attributed


async def attribute(
    session: AsyncSession, order: Order, profile_id: int, window: timedelta
) -> Message | None:
    """The message this order converts (None: it is no conversion, or no message was sent
    within the window before it)."""
    value = conversion_value(order)
    if value is None:
        return None
    message = await session.scalar(
        select(Message)
        .where(
            Message.profile_id == profile_id,
            Message.marketing.is_(True),
            Message.status.in_([MessageStatus.SENT, MessageStatus.SENDING]),
            Message.sent_at < order.placed_at,
            Message.sent_at >= order.placed_at - window,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    if message is None:
        return None
    if message.converted_order_id is None:
        message.converted_order_id = order.id
        message.revenue, message.currency = value, order.currency
    elif message.converted_order_id != order.id and message.currency == order.currency:
        message.revenue = (message.revenue or 0) + value
    what = message.subject or message.template_key
    amount = format_money(value, order.currency)
    await record(
        session,
        installation_id=order.installation_id,
        profile_id=profile_id,
        kind="message_converted",
        occurred_at=order.placed_at,
        subject_type="message",
        subject_id=str(message.id),
        summary=f"Order #{order.number or order.saleor_id} ({amount}) after “{what}”",
        data={
            "message_id": message.id,
            "flow_id": message.flow_id,
            "step_index": message.step_index,
            "variant": message.variant,
            "channel": message.channel.value,
            "order_id": order.saleor_id,
            "order_number": order.number,
            "revenue": str(value),
            "currency": order.currency,
            "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        },
        dedup_key=f"message:{message.id}:converted:{order.id}",
    )
    return message
