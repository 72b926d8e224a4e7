"""Segments: the list with size sparklines, the builder with a live preview, the members
with why each one is in."""

from __future__ import annotations

import json
from typing import Any

from dashboard_extension.charts import sparkline
from dashboard_extension.graph import run
from dashboard_extension.views import Call, Problem, Rendered, read
from dashboard_extension.views.imports import duration
from plugin.kit.bodies import parse_json
from plugin.segments.fields import FIELDS, OPERATORS

# Operators that take no value, and those that take a list or a [low, high] pair.
NO_VALUE = {"is_set", "is_not_set", "is_true", "is_false"}
LIST_VALUE = {"in", "not_in", "has_any", "has_none", "between"}
STARTER_RULE: dict[str, Any] = {"all": [{"field": "paid_orders_count", "op": "gte", "value": 1}]}


def field_catalogue() -> list[dict[str, Any]]:
    """What the builder offers: each field with its kind's operators (the rule language)."""
    return [
        {
            "name": f.name,
            "label": f.label,
            "kind": f.kind.value,
            "operators": list(f.operators or OPERATORS[f.kind]),
        }
        for f in FIELDS.values()
    ]


def segment_progress(segment: dict[str, Any]) -> dict[str, Any] | None:
    """What the bar of a segment being computed shows: the API's percentage (None until
    the job starts) and its ETA in words (None until a first chunk is done)."""
    recompute = segment.get("recompute")
    if recompute is None:
        return None
    eta = recompute.get("etaSeconds")
    return {
        "percent": recompute.get("percent"),
        "started": recompute.get("startedAt") is not None,
        "eta": None if eta is None else duration(float(eta)),
    }


async def segment_list(call: Call) -> Rendered:
    answer = await read(call, "segments")
    rows = [
        {
            **s,
            "spark": sparkline(s["countHistory"], f"{s['name']}: members per day"),
            "progress": segment_progress(s),
        }
        for s in (answer.data or {})["segments"]
    ]
    return Rendered("fragments/segments.html", {"segments": rows})


async def builder(call: Call) -> Rendered:
    slug = call.param("segment")
    segment = None
    if slug:
        answer = await read(call, "segment", {"slug": slug})
        segment = (answer.data or {}).get("segment")
        if segment is None:
            raise Problem(404, "No such segment", f"The shop has no segment {slug!r}.")
    rules = segment["rules"] if segment else STARTER_RULE
    return Rendered(
        "fragments/segment_builder.html",
        {
            "segment": segment,
            "rules_json": json.dumps(rules, indent=2),
            "fields_json": json.dumps(field_catalogue()),
            "no_value": sorted(NO_VALUE),
            "list_value": sorted(LIST_VALUE),
        },
    )


async def preview(call: Call) -> Rendered:
    raw = call.param("rules") or ""
    try:
        rules = parse_json(raw)
    except ValueError as error:
        return Rendered("fragments/segment_preview.html", {"error": f"Not JSON: {error}"})
    answer = await run(call.api, "segment_preview", {"rules": rules})
    if not answer.authenticated:  # a bad rule is shown in place; a bad token is not
        await read(call, "segment_preview", {"rules": rules})
    result = (answer.data or {}).get("segmentPreview")
    if result is None:
        return Rendered("fragments/segment_preview.html", {"error": answer.first_message()})
    return Rendered("fragments/segment_preview.html", {"preview": result, "error": None})


def _why(customer: dict[str, Any], slug: str) -> Any:
    for membership in customer.get("segments") or []:
        if membership["segment"]["slug"] == slug:
            return membership["why"]
    return None


async def members(call: Call) -> Rendered:
    slug = call.param("segment")
    if not slug:
        raise Problem(400, "No segment given", "Pick a segment in the list.")
    answer = await read(call, "segment_members", {"slug": slug, "after": call.param("after")})
    segment = (answer.data or {}).get("segment")
    if segment is None:
        raise Problem(404, "No such segment", f"The shop has no segment {slug!r}.")
    people = [{**m, "why": _why(m, slug)} for m in segment["members"]["nodes"]]
    return Rendered(
        "fragments/segment_members.html",
        {
            "segment": segment,
            "members": people,
            "page": segment["members"],
            "spark": sparkline(segment["countHistory"], "Members per day"),
            "progress": segment_progress(segment),
        },
    )
