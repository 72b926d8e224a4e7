"""Starting flow runs and walking their steps, one transaction per visit.

A visit runs the steps that are due, queues messages under idempotency keys made of
(flow, step, run) — a run is unique per (flow, profile, trigger instance) — and stops at
a wait, storing the next time in the row. A visit repeated (a redelivered job, two
workers) finds the run already moved on and does nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Order
from plugin.db.upsert import insert_ignore
from plugin.kit.after_commit import enqueue_after_commit
from plugin.messaging.config import shop_settings
from plugin.messaging.consent import refusal
from plugin.messaging.flows import wait_delta
from plugin.messaging.models import Channel, Flow, FlowRun, RunStatus
from plugin.messaging.pacing import zone
from plugin.messaging.sending import MessageRequest, queue
from plugin.profiles.models import Profile, ProfileTag
from plugin.segments.evaluate import matches
from plugin.segments.facts import load_facts
from plugin.segments.rules import parse_rule
from plugin.segments.thresholds import resolve

STEP_ACTOR = "messaging.step"
MAX_STEPS_PER_VISIT = 25
CLAIM = timedelta(minutes=2)


def bucket(*parts: object) -> int:
    """A stable number 0–9999 for an assignment that must not change between visits."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000


async def rule_holds(session: AsyncSession, profile: Profile, raw: Any, now: datetime) -> bool:
    rule = await resolve(session, profile.installation_id, parse_rule(raw))
    return matches(rule, await load_facts(session, profile), now)


async def may_enter(session: AsyncSession, flow: Flow, profile_id: int, now: datetime) -> bool:
    if flow.reentry == "always":
        return True
    query = select(FlowRun.started_at, FlowRun.status).where(
        FlowRun.flow_id == flow.id, FlowRun.profile_id == profile_id
    )
    runs = list(await session.execute(query))
    if flow.reentry == "once":
        return not runs
    if any(status is RunStatus.ACTIVE for _, status in runs):
        return False
    if flow.reentry == "cooldown":
        since = now - timedelta(days=flow.reentry_days)
        return not any(started > since for started, _ in runs)
    return True


async def start_run(
    session: AsyncSession,
    flow: Flow,
    profile: Profile,
    trigger_key: str,
    trigger_data: dict[str, Any],
    now: datetime,
) -> int | None:
    """A new run (None: re-entry forbids it, the filter fails, or it exists already)."""
    exists = await session.scalar(
        select(FlowRun.id).where(
            FlowRun.flow_id == flow.id,
            FlowRun.profile_id == profile.id,
            FlowRun.trigger_key == trigger_key[:256],
        )
    )
    if exists is not None or not await may_enter(session, flow, profile.id, now):
        return None
    if "filter" in flow.trigger and not await rule_holds(
        session, profile, flow.trigger["filter"], now
    ):
        return None
    holdout = bucket("holdout", flow.id, profile.id) < flow.holdout_percent * 100
    run_id = await insert_ignore(
        session,
        FlowRun,
        {
            "installation_id": flow.installation_id,
            "flow_id": flow.id,
            "profile_id": profile.id,
            "trigger_key": trigger_key[:256],
            "trigger_data": trigger_data,
            "status": RunStatus.HOLDOUT if holdout else RunStatus.ACTIVE,
            "step_index": 0,
            "next_at": None if holdout else now,
            "started_at": now,
            "finished_at": now if holdout else None,
            "outcome": "held out (control group)" if holdout else None,
        },
        conflict_columns=["flow_id", "profile_id", "trigger_key"],
    )
    if run_id is not None and not holdout:
        enqueue_after_commit(session, STEP_ACTOR, run_id=run_id)
    return run_id


async def due_runs(session: AsyncSession, now: datetime, limit: int = 200) -> list[int]:
    """Active runs whose next step is due and that no worker holds; claims them for a
    while (SKIP LOCKED: ticks of several workers pick different rows on PostgreSQL)."""
    query = (
        select(FlowRun)
        .where(FlowRun.status == RunStatus.ACTIVE, FlowRun.next_at <= now)
        .where((FlowRun.claimed_until.is_(None)) | (FlowRun.claimed_until < now))
        .order_by(FlowRun.next_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    runs = list(await session.scalars(query))
    for run in runs:
        run.claimed_until = now + CLAIM
    return [run.id for run in runs]


def _send_channels(flow: Flow) -> list[Channel]:
    return [Channel(step.get("channel", "email")) for step in flow.steps if step["type"] == "send"]


async def exit_reason(
    session: AsyncSession, flow: Flow, run: FlowRun, profile: Profile, now: datetime
) -> str | None:
    exits = flow.exits or {}
    if exits.get("ordered"):
        # Saleor's time of the trigger when there is one (orders carry Saleor's times too)
        raw_at = (run.trigger_data or {}).get("trigger_at")
        since = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else run.started_at
        query = select(Order.id).where(Order.profile_id == profile.id, Order.placed_at > since)
        trigger_order = (run.trigger_data or {}).get("order_id")
        if trigger_order:
            query = query.where(Order.saleor_id != str(trigger_order))
        if await session.scalar(query.limit(1)) is not None:
            return "ordered since the trigger"
    if exits.get("unsubscribed") and flow.marketing:
        channels = _send_channels(flow) or [Channel.EMAIL]
        reasons = [
            await refusal(session, profile, c, marketing=True, topic=flow.topic) for c in channels
        ]
        if all(reasons):
            return f"cannot be reached: {reasons[0]}"
    if exits.get("left_segment"):
        facts = await load_facts(session, profile)
        if exits["left_segment"] not in facts.segments:
            return f"left segment {exits['left_segment']!r}"
    if "goal" in exits and await rule_holds(session, profile, exits["goal"], now):
        return "goal reached"
    return None


async def _wait_until(
    session: AsyncSession, flow: Flow, step: dict[str, Any], now: datetime
) -> datetime:
    at = now + wait_delta(step)
    if step.get("until"):
        shop = await shop_settings(session, flow.installation_id)
        tz = zone(shop.timezone)
        hour, minute = (int(x) for x in str(step["until"]).split(":"))
        local = at.astimezone(tz)
        target = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
        if target < local:
            target += timedelta(days=1)
        at = target.astimezone(now.tzinfo)
    return at


async def checkout_changed(
    session: AsyncSession,
    flow: Flow,
    profile_id: int,
    trigger_key: str,
    changed_at: datetime,
    *,
    emptied: bool,
) -> bool:
    """A checkout with a run under way changed again ("abandoned" means no order within
    the wait after the *last* change): the wait under way restarts from this change, and
    an emptied cart ends the run. False when there is no such run."""
    run = await session.scalar(
        select(FlowRun)
        .where(
            FlowRun.flow_id == flow.id,
            FlowRun.profile_id == profile_id,
            FlowRun.trigger_key == trigger_key[:256],
        )
        .with_for_update()
    )
    if run is None:
        return False
    if run.status is not RunStatus.ACTIVE:
        return True
    if emptied:
        _finish(run, RunStatus.EXITED, "checkout emptied", changed_at)
        return True
    if run.step_index == 0 or run.next_at is None:
        return True  # not waiting yet: its first visit counts from then
    step = flow.steps[run.step_index - 1]
    if step["type"] == "wait":
        restarted = await _wait_until(session, flow, step, changed_at)
        if restarted > run.next_at:
            run.next_at, run.claimed_until = restarted, None
    return True


def pick_variant(
    step: dict[str, Any], flow_id: int, index: int, profile_id: int
) -> tuple[str | None, str]:
    """Deterministic weighted A/B assignment: the same customer always gets the same."""
    variants = step.get("variants")
    if not variants:
        return None, str(step["template"])
    total = sum(float(v.get("weight", 1)) for v in variants) or 1.0
    point = bucket("variant", flow_id, index, profile_id) / 10_000 * total
    for i, variant in enumerate(variants):
        point -= float(variant.get("weight", 1))
        if point < 0:
            return str(variant.get("name", chr(ord("A") + i))), str(variant["template"])
    last = variants[-1]
    return str(last.get("name", chr(ord("A") + len(variants) - 1))), str(last["template"])


async def _send(
    session: AsyncSession, flow: Flow, run: FlowRun, index: int, step: dict[str, Any], now: datetime
) -> None:
    variant, template = pick_variant(step, flow.id, index, run.profile_id)
    data = dict(run.trigger_data or {})
    status = str((data.get("shipment") or {}).get("status") or data.get("status") or "")
    template = template.replace("{status}", status.lower().replace("_", "-"))
    staff = step["type"] == "notify_staff"
    if step.get("promo_code"):
        data["promo_code"] = step["promo_code"]
    if staff:
        data["staff_to"] = step["email"]
    await queue(
        session,
        MessageRequest(
            installation_id=flow.installation_id,
            profile_id=run.profile_id,
            idempotency_key=f"flow:{flow.id}:step:{index}:run:{run.id}",
            channel=Channel(step.get("channel", "email")),
            template_key=template,
            marketing=flow.marketing and not staff,
            topic="staff" if staff else flow.topic,
            variables=data,
            flow_id=flow.id,
            run_id=run.id,
            step_index=index,
            variant=variant,
        ),
        now,
    )


async def _tag(session: AsyncSession, run: FlowRun, tag: str, add: bool, now: datetime) -> None:
    if add:
        await insert_ignore(
            session,
            ProfileTag,
            {
                "installation_id": run.installation_id,
                "profile_id": run.profile_id,
                "tag": tag,
                "created_at": now,
            },
            conflict_columns=["profile_id", "tag"],
        )
    else:
        await session.execute(
            delete(ProfileTag).where(ProfileTag.profile_id == run.profile_id, ProfileTag.tag == tag)
        )


def _finish(run: FlowRun, status: RunStatus, outcome: str, now: datetime) -> None:
    run.status, run.outcome, run.finished_at = status, outcome[:512], now
    run.next_at = None


async def visit(session: AsyncSession, run_id: int, now: datetime) -> RunStatus | None:
    """Run the due steps of one run (inside the caller's transaction)."""
    run = await session.scalar(select(FlowRun).where(FlowRun.id == run_id).with_for_update())
    if run is None or run.status is not RunStatus.ACTIVE:
        return None
    if run.next_at is not None and run.next_at > now:
        return run.status
    flow = await session.get(Flow, run.flow_id)
    profile = await session.get(Profile, run.profile_id)
    if flow is None or profile is None or not flow.enabled:
        _finish(run, RunStatus.EXITED, "flow switched off", now)
        return run.status
    run.claimed_until = None
    for _ in range(MAX_STEPS_PER_VISIT):
        if run.step_index >= len(flow.steps):
            _finish(run, RunStatus.COMPLETED, "all steps done", now)
            break
        if (reason := await exit_reason(session, flow, run, profile, now)) is not None:
            _finish(run, RunStatus.EXITED, reason, now)
            break
        index, step = run.step_index, flow.steps[run.step_index]
        kind = step["type"]
        if kind == "wait":
            run.step_index, run.next_at = index + 1, await _wait_until(session, flow, step, now)
            break
        if kind == "exit":
            _finish(run, RunStatus.EXITED, f"exit step {index}", now)
            break
        if kind == "condition":
            if await rule_holds(session, profile, step["rule"], now):
                run.step_index = index + 1
            elif step.get("else", "exit") == "exit":
                _finish(run, RunStatus.EXITED, f"condition of step {index} not met", now)
                break
            else:
                run.step_index = int(step["else"])
            continue
        if kind in ("send", "notify_staff"):
            await _send(session, flow, run, index, step, now)
        elif kind in ("tag", "untag"):
            await _tag(session, run, str(step["tag"]).strip(), kind == "tag", now)
        run.step_index = index + 1
    else:
        run.next_at = now  # a long chain: the next tick goes on
    return run.status
