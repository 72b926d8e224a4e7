"""Flows read the timeline: every entry since the shop's cursor may start runs.

On PostgreSQL ids are handed out before commit, so an entry with a smaller id can become
visible after a larger one. The cursor therefore only moves past entries older than a
safety lag; newer ones are read again on the next tick, which is harmless because a run
is unique per (flow, profile, trigger instance).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Order, OrderLine
from plugin.messaging.config import shop_settings
from plugin.messaging.conversions import attribute_orders
from plugin.messaging.flows import TIME_TRIGGERS, trigger_kinds
from plugin.messaging.models import Flow, MessagingSettings
from plugin.messaging.pacing import zone
from plugin.messaging.runs import checkout_changed, start_run
from plugin.messaging.typical import typical_interval_days
from plugin.profiles.models import Profile
from plugin.segments.models import Segment, SegmentMembership
from plugin.timeline.models import TimelineEntry

BATCH = 1000
TIME_TRIGGER_EVERY = timedelta(hours=1)
LOOKBACK_DAYS = 7  # a shop whose ticks stopped for a while still catches up this far


def trigger_instance(flow: Flow, entry: TimelineEntry) -> tuple[str, dict[str, Any]] | None:
    """The trigger key (what "the same trigger" means) and the data a run keeps."""
    kind, trigger, data = entry.kind, flow.trigger, entry.data or {}
    if kind not in trigger_kinds(trigger):
        return None
    ttype = trigger["type"]
    if ttype in ("segment_entered", "segment_left"):
        if entry.subject_id != trigger.get("segment"):
            return None
        return f"entry:{entry.id}", {"segment": entry.subject_id}
    if ttype == "checkout_abandoned":
        if not int(data.get("lines") or 0):
            return None
        return f"checkout:{entry.subject_id}", {"checkout_id": entry.subject_id}
    if ttype in ("order_placed", "order_paid", "order_fulfilled"):
        order_id = data.get("order_id") if entry.subject_type == "fulfillment" else None
        order_id = order_id or entry.subject_id
        return f"order:{order_id}", {"order_id": order_id}
    if kind.startswith("shipment_"):
        if data.get("notify") is False and not flow.marketing:
            return None  # the merchant silenced this parcel's notifications
        shipment = dict(data)
        shipment_id = data.get("shipment_id") or entry.subject_id
        return (
            f"shipment:{shipment_id}:{kind}",
            {
                "order_id": data.get("order_id"),
                "shipment": shipment,
                "status": kind.removeprefix("shipment_"),
            },
        )
    return f"entry:{entry.id}", {"entry_id": entry.id, "data": data}


async def _category_matches(session: AsyncSession, flow: Flow, data: dict[str, Any]) -> bool:
    category = flow.trigger.get("category")
    if not category or not data.get("order_id"):
        return True
    found = await session.scalar(
        select(OrderLine.id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.installation_id == flow.installation_id,
            Order.saleor_id == str(data["order_id"]),
            OrderLine.category_name == category,
        )
        .limit(1)
    )
    return found is not None


async def _checkout_run_moved(session: AsyncSession, flow: Flow, entry: TimelineEntry) -> bool:
    """An abandoned-checkout run already under way for this checkout: the change moves
    its wait (or ends it, when the cart was emptied) instead of starting anything."""
    if flow.trigger.get("type") != "checkout_abandoned" or entry.kind != "checkout_updated":
        return False
    emptied = not int((entry.data or {}).get("lines") or 0)
    return await checkout_changed(
        session,
        flow,
        entry.profile_id,
        f"checkout:{entry.subject_id}",
        entry.occurred_at,
        emptied=emptied,
    )


async def read_timeline(
    session: AsyncSession, installation_id: int, now: datetime, lag: timedelta
) -> int:
    """Start runs for the entries since the cursor, and attribute the orders among them
    to the messages that led to them; returns how many runs started."""
    shop = await shop_settings(session, installation_id)
    before = shop.timeline_cursor
    started = await _start_runs(session, shop, installation_id, now, lag)
    window = timedelta(days=shop.attribution_days)
    await attribute_orders(session, installation_id, before, shop.timeline_cursor, window)
    return started


async def _start_runs(
    session: AsyncSession,
    shop: MessagingSettings,
    installation_id: int,
    now: datetime,
    lag: timedelta,
) -> int:
    flows = [
        f
        for f in await session.scalars(
            select(Flow).where(Flow.installation_id == installation_id, Flow.enabled.is_(True))
        )
        if f.trigger.get("type") not in TIME_TRIGGERS
    ]
    if not flows:  # nothing listens: move the cursor over what has settled, read nothing
        settled_id = await session.scalar(
            select(func.max(TimelineEntry.id)).where(
                TimelineEntry.installation_id == installation_id,
                TimelineEntry.id > shop.timeline_cursor,
                TimelineEntry.recorded_at <= now - lag,
            )
        )
        if settled_id is not None:
            shop.timeline_cursor = settled_id
        return 0
    entries = list(
        await session.scalars(
            select(TimelineEntry)
            .where(
                TimelineEntry.installation_id == installation_id,
                TimelineEntry.id > shop.timeline_cursor,
            )
            .order_by(TimelineEntry.id)
            .limit(BATCH)
        )
    )
    started = 0
    settled = True
    for entry in entries:
        for flow in flows:
            if await _checkout_run_moved(session, flow, entry):
                continue
            found = trigger_instance(flow, entry)
            if found is None or not await _category_matches(session, flow, found[1]):
                continue
            profile = await session.get(Profile, entry.profile_id)
            data = {**found[1], "trigger_at": entry.occurred_at.isoformat()}
            if profile is not None and await start_run(session, flow, profile, found[0], data, now):
                started += 1
        settled = settled and entry.recorded_at <= now - lag
        if settled:
            shop.timeline_cursor = entry.id
    return started


def _anniversary(raw: Any) -> tuple[int, int] | None:
    """`1990-05-17`, `05-17` or `--05-17` → (5, 17)."""
    if not isinstance(raw, str):
        return None
    parts = raw.strip().lstrip("-").split("-")
    try:
        month, day = (int(parts[-2]), int(parts[-1])) if len(parts) >= 2 else (0, 0)
        date(2000, month, day)  # a leap year accepts 02-29
    except (ValueError, IndexError):
        return None
    return month, day


async def time_triggers(session: AsyncSession, installation_id: int, now: datetime) -> int:
    """No order for N days, birthdays: checked hourly, one run per occasion."""
    shop = await shop_settings(session, installation_id)
    if shop.time_triggers_at is not None and shop.time_triggers_at > now - TIME_TRIGGER_EVERY:
        return 0
    shop.time_triggers_at = now
    started = 0
    flows = await session.scalars(
        select(Flow).where(Flow.installation_id == installation_id, Flow.enabled.is_(True))
    )
    for flow in flows:
        ttype = flow.trigger.get("type")
        if ttype == "no_order_for_days":
            started += await _lapsed(session, flow, now)
        elif ttype == "date_field":
            started += await _dates(session, flow, shop.timezone, now)
    return started


async def _lapsed(session: AsyncSession, flow: Flow, now: datetime) -> int:
    raw = flow.trigger["days"]
    if raw == "typical":
        default = float(flow.trigger.get("default_days", 90))
        days = await typical_interval_days(session, flow.installation_id, default)
        label = "typical"  # one run per lapse, even when the typical interval moves
    else:
        days = float(raw)
        label = f"{days:g}"
    newest = now - timedelta(days=days)
    query = select(Profile).where(
        Profile.installation_id == flow.installation_id,
        Profile.last_order_at <= newest,
        Profile.last_order_at > newest - timedelta(days=LOOKBACK_DAYS),
    )
    if segment := flow.trigger.get("segment"):
        query = query.where(
            Profile.id.in_(
                select(SegmentMembership.profile_id)
                .join(Segment, Segment.id == SegmentMembership.segment_id)
                .where(Segment.installation_id == flow.installation_id, Segment.key == segment)
            )
        )
    started = 0
    for profile in await session.scalars(query):
        assert profile.last_order_at is not None
        key = f"lapse:{label}:{profile.last_order_at.isoformat()}"
        data = {"last_order_at": key, "days": days}
        if await start_run(session, flow, profile, key, data, now):
            started += 1
    return started


async def _dates(session: AsyncSession, flow: Flow, timezone: str, now: datetime) -> int:
    field = str(flow.trigger.get("field", "birthday"))
    ahead = int(flow.trigger.get("days_before", 0))
    today = now.astimezone(zone(timezone)).date() + timedelta(days=ahead)
    started = 0
    profiles = await session.scalars(
        select(Profile).where(
            Profile.installation_id == flow.installation_id,
            Profile.saleor_metadata.is_not(None),
        )
    )
    for profile in profiles:
        when = _anniversary((profile.saleor_metadata or {}).get(field))
        if when != (today.month, today.day):
            continue
        key = f"{field}:{today.year}"
        if await start_run(session, flow, profile, key, {"date_field": field}, now):
            started += 1
    return started
