"""Flow definitions: trigger, steps, exit conditions, re-entry — validated before saving.

Everything is plain JSON so the API, presets and the dashboard share one shape; every
problem names its JSON path, like segment rules do.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from plugin.messaging.models import Channel
from plugin.segments.rules import RuleError, parse_rule

# Trigger type → the timeline kinds that start it (time-driven triggers have none).
EVENT_TRIGGERS: dict[str, frozenset[str]] = {
    "checkout_abandoned": frozenset({"checkout_created", "checkout_updated"}),
    "order_placed": frozenset({"order_created"}),
    "order_paid": frozenset({"order_fully_paid", "order_paid"}),
    "order_fulfilled": frozenset({"order_fulfilled", "fulfillment_created"}),
    "parcel_delivered": frozenset({"shipment_delivered"}),
    "segment_entered": frozenset({"segment_entered"}),
    "segment_left": frozenset({"segment_left"}),
    "consent_changed": frozenset({"consent_changed"}),
}
SHIPMENT_STATUSES = (
    "info_received",
    "in_transit",
    "out_for_delivery",
    "attempt_fail",
    "available_for_pickup",
    "delivered",
    "exception",
)
TIME_TRIGGERS = frozenset({"no_order_for_days", "date_field"})
TRIGGER_TYPES = frozenset(EVENT_TRIGGERS) | TIME_TRIGGERS | {"shipment_status", "event"}
STEP_TYPES = frozenset({"wait", "condition", "send", "tag", "untag", "notify_staff", "exit"})
REENTRY = frozenset({"once", "no_overlap", "always", "cooldown"})
EXITS = frozenset({"ordered", "unsubscribed", "left_segment", "goal"})
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_STEPS = 50


class FlowError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def _rule(raw: Any, path: str) -> None:
    try:
        parse_rule(raw)
    except RuleError as error:
        raise FlowError(path + error.path.removeprefix("$"), error.message) from None


def _number(raw: Any, path: str, *, upper: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= upper:
        raise FlowError(path, f"a number from 0 to {upper:g}")
    return float(raw)


def trigger_kinds(trigger: dict[str, Any]) -> frozenset[str]:
    kind = trigger.get("type")
    if kind == "shipment_status":
        return frozenset(f"shipment_{s}" for s in trigger.get("statuses") or SHIPMENT_STATUSES)
    if kind == "event":
        return frozenset(trigger.get("kinds") or ())
    return EVENT_TRIGGERS.get(str(kind), frozenset())


def validate_trigger(raw: Any) -> dict[str, Any]:
    path = "$.trigger"
    if not isinstance(raw, dict) or raw.get("type") not in TRIGGER_TYPES:
        raise FlowError(path + ".type", f"one of {', '.join(sorted(TRIGGER_TYPES))}")
    kind = raw["type"]
    if kind in ("segment_entered", "segment_left") and not isinstance(raw.get("segment"), str):
        raise FlowError(path + ".segment", "the slug of a segment")
    if kind == "no_order_for_days":
        if raw.get("days") == "typical":  # the shop's typical interval between orders
            _number(raw.get("default_days", 90), path + ".default_days", upper=3650)
        else:
            _number(raw.get("days"), path + ".days", upper=3650)
        if "segment" in raw and not isinstance(raw["segment"], str):
            raise FlowError(path + ".segment", "the slug of a segment")
    if kind == "date_field":
        if not isinstance(raw.get("field", "birthday"), str):
            raise FlowError(path + ".field", "a metadata key such as birthday")
        _number(raw.get("days_before", 0), path + ".days_before", upper=60)
    if kind == "shipment_status":
        statuses = raw.get("statuses") or list(SHIPMENT_STATUSES)
        if not isinstance(statuses, list) or set(statuses) - set(SHIPMENT_STATUSES):
            raise FlowError(path + ".statuses", f"some of {', '.join(SHIPMENT_STATUSES)}")
    if kind == "event":
        kinds = raw.get("kinds")
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise FlowError(path + ".kinds", "a list of timeline kinds")
    if "category" in raw and not isinstance(raw["category"], str):
        raise FlowError(path + ".category", "a category name")
    if "filter" in raw:
        _rule(raw["filter"], path + ".filter")
    return dict(raw)


def wait_delta(step: dict[str, Any]) -> timedelta:
    return timedelta(
        days=float(step.get("days", 0)),
        hours=float(step.get("hours", 0)),
        minutes=float(step.get("minutes", 0)),
    )


def _step(raw: Any, index: int, count: int) -> dict[str, Any]:
    path = f"$.steps[{index}]"
    if not isinstance(raw, dict) or raw.get("type") not in STEP_TYPES:
        raise FlowError(path + ".type", f"one of {', '.join(sorted(STEP_TYPES))}")
    kind = raw["type"]
    if kind == "wait":
        for unit, upper in (("days", 3650), ("hours", 24 * 3650), ("minutes", 60 * 24 * 365)):
            if unit in raw:
                _number(raw[unit], f"{path}.{unit}", upper=upper)
        until = raw.get("until")
        if until is not None and (not isinstance(until, str) or not TIME_OF_DAY.match(until)):
            raise FlowError(path + ".until", "a time of day like 10:00 (the shop's time zone)")
        if until is None and wait_delta(raw) <= timedelta(0):
            raise FlowError(path, "a wait needs days, hours, minutes or until")
    elif kind == "condition":
        _rule(raw.get("rule"), path + ".rule")
        target = raw.get("else", "exit")
        if target != "exit" and not (isinstance(target, int) and index < target <= count):
            raise FlowError(path + ".else", '"exit" or the index of a later step')
    elif kind in ("send", "notify_staff"):
        _send(raw, path)
    elif kind in ("tag", "untag"):
        tag = raw.get("tag")
        if not isinstance(tag, str) or not 0 < len(tag.strip()) <= 64:
            raise FlowError(path + ".tag", "a tag of 1 to 64 characters")
    return dict(raw)


def _send(raw: dict[str, Any], path: str) -> None:
    channel = raw.get("channel", "email")
    if channel not in {c.value for c in Channel}:
        raise FlowError(path + ".channel", "email, sms or telegram")
    variants = raw.get("variants")
    if variants is None:
        template = raw.get("template")
        if not isinstance(template, str) or not KEY.match(template.replace("{status}", "s")):
            raise FlowError(path + ".template", "the key of a template")
    else:
        if not isinstance(variants, list) or not 2 <= len(variants) <= 5:
            raise FlowError(path + ".variants", "2 to 5 variants")
        names = set()
        for i, variant in enumerate(variants):
            vpath = f"{path}.variants[{i}]"
            if not isinstance(variant, dict) or not isinstance(variant.get("template"), str):
                raise FlowError(vpath + ".template", "the key of a template")
            name = variant.get("name", chr(ord("A") + i))
            if not isinstance(name, str) or name in names:
                raise FlowError(vpath + ".name", "a distinct name")
            names.add(name)
            _number(variant.get("weight", 1), vpath + ".weight", upper=1000)
    if raw["type"] == "notify_staff" and "@" not in str(raw.get("email", "")):
        raise FlowError(path + ".email", "the staff e-mail address to notify")
    if "promo_code" in raw and not isinstance(raw["promo_code"], str):
        raise FlowError(path + ".promo_code", "a text")


def validate_steps(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_STEPS:
        raise FlowError("$.steps", f"a list of 1 to {MAX_STEPS} steps")
    return [_step(step, i, len(raw)) for i, step in enumerate(raw)]


def validate_exits(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - EXITS:
        raise FlowError("$.exits", f"an object with some of {', '.join(sorted(EXITS))}")
    if "left_segment" in raw and not isinstance(raw["left_segment"], str):
        raise FlowError("$.exits.left_segment", "the slug of a segment")
    if "goal" in raw:
        _rule(raw["goal"], "$.exits.goal")
    for flag in ("ordered", "unsubscribed"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise FlowError(f"$.exits.{flag}", "true or false")
    return dict(raw)


def validate_reentry(policy: str, days: int) -> None:
    if policy not in REENTRY:
        raise FlowError("$.reentry", f"one of {', '.join(sorted(REENTRY))}")
    if policy == "cooldown" and not 0 < days <= 3650:
        raise FlowError("$.reentryDays", "a cooldown of 1 to 3650 days")
