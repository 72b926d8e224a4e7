"""Mailing flows: the list (on/off, trigger and steps in words), the editor, the stats.

Writes go from the page to the GraphQL API (`messageFlowCreate/Update/Delete`); these
views only read. The stats page draws `messageFlowStats` as grouped bars per variant.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard_extension.charts import flow_results
from dashboard_extension.views import Call, Problem, Rendered, read
from plugin.messaging.flows import EXITS, REENTRY, STEP_TYPES, TRIGGER_TYPES

CONFIGURATION = ("MANAGE_USERS", "MANAGE_APPS")


def _may_configure(permissions: list[str]) -> bool:
    return all(p in permissions for p in CONFIGURATION)


def describe_trigger(trigger: dict[str, Any]) -> str:
    """`{"type": "no_order_for_days", "days": 90}` → `No order for 90 days`."""
    kind = str(trigger.get("type") or "?")
    words = kind.replace("_", " ").capitalize()
    if kind == "no_order_for_days" and trigger.get("days") == "typical":
        fallback = trigger.get("default_days", 90)
        words = (
            f"No order for the shop's typical interval between orders ({fallback} days until known)"
        )
    elif kind == "no_order_for_days":
        words = f"No order for {trigger.get('days', '?')} days"
    elif kind in ("segment_entered", "segment_left"):
        words += f" “{trigger.get('segment', '?')}”"
    elif kind == "shipment_status" and trigger.get("statuses"):
        words += ": " + ", ".join(str(s).replace("_", " ") for s in trigger["statuses"])
    elif kind == "date_field":
        words = f"{trigger.get('days_before', 0)} days before {trigger.get('field', 'birthday')}"
    elif kind == "event":
        words = "Timeline event " + ", ".join(map(str, trigger.get("kinds") or []))
    return words


def describe_step(step: dict[str, Any]) -> str:
    """One step in a few words: `wait 2 h`, `send hello`, `A/B: a | b`, `tag vip`."""
    kind = str(step.get("type") or "?")
    if kind == "wait":
        parts = [f"{step[u]:g} {u[0]}" for u in ("days", "hours", "minutes") if step.get(u)]
        if step.get("until"):
            parts.append(f"until {step['until']}")
        return "wait " + " ".join(parts)
    if kind in ("send", "notify_staff"):
        channel = step.get("channel", "email")
        if step.get("variants"):
            names = " | ".join(str(v.get("template")) for v in step["variants"])
            return f"A/B {channel}: {names}"
        return f"{'notify staff' if kind == 'notify_staff' else 'send'} {step.get('template')}"
    if kind in ("tag", "untag"):
        return f"{kind} {step.get('tag')}"
    return kind


def _row(flow: dict[str, Any]) -> dict[str, Any]:
    return {
        **flow,
        "trigger_text": describe_trigger(flow["trigger"] or {}),
        "steps_text": [describe_step(s) for s in flow["steps"] or []],
    }


async def flow_list(call: Call) -> Rendered:
    answer = await read(call, "message_flows")
    data = answer.data or {}
    return Rendered(
        "fragments/flows.html",
        {
            "flows": [_row(f) for f in data["messageFlows"]],
            "can_edit": _may_configure(data["viewer"]["permissions"]),
        },
    )


def _starter(templates: list[dict[str, Any]]) -> dict[str, Any]:
    template = templates[0]["key"] if templates else "thank-you"
    return {
        "key": "",
        "name": "",
        "enabled": False,
        "marketing": True,
        "topic": "offers",
        "reentry": "no_overlap",
        "reentryDays": 0,
        "holdoutPercent": 0,
        "trigger": {"type": "order_paid"},
        "steps": [{"type": "wait", "hours": 2}, {"type": "send", "template": template}],
        "exits": {"ordered": True},
    }


async def flow_editor(call: Call) -> Rendered:
    answer = await read(call, "message_flows")
    data = answer.data or {}
    key = call.param("flow")
    flow = None
    if key:
        flow = next((f for f in data["messageFlows"] if f["key"] == key), None)
        if flow is None:
            raise Problem(404, "No such flow", f"The shop has no flow {key!r}.")
    shown = flow or _starter(data["messageTemplates"])
    return Rendered(
        "fragments/flow_editor.html",
        {
            "flow": flow,
            "f": shown,
            "trigger_json": json.dumps(shown["trigger"], indent=2),
            "steps_json": json.dumps(shown["steps"], indent=2),
            "exits_json": json.dumps(shown["exits"] or {}, indent=2),
            "templates": data["messageTemplates"],
            "trigger_types": sorted(TRIGGER_TYPES),
            "step_types": sorted(STEP_TYPES),
            "exit_kinds": sorted(EXITS),
            "reentry": sorted(REENTRY),
            "can_edit": _may_configure(data["viewer"]["permissions"]),
        },
    )


async def flow_stats(call: Call) -> Rendered:
    key = call.param("flow") or ""
    listing = await read(call, "flow_stats", {"key": key, "withStats": False})
    flows = (listing.data or {})["messageFlows"]
    if not flows and not key:
        return Rendered("fragments/flow_stats.html", {"flows": [], "flow": None})
    if not key:
        key = next((f["key"] for f in flows if f["enabled"]), flows[0]["key"])
    flow = next((f for f in flows if f["key"] == key), None)
    if flow is None:
        raise Problem(404, "No such flow", f"The shop has no flow {key!r}.")
    answer = await read(call, "flow_stats", {"key": key, "withStats": True})
    stats = (answer.data or {})["messageFlowStats"]
    return Rendered(
        "fragments/flow_stats.html",
        {
            "flows": flows,
            "flow": flow,
            "steps": stats["steps"],
            "holdout": stats["holdout"],
            "chart": flow_results(stats["steps"]),
        },
    )
