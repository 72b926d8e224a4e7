"""Message templates: the list, the editor with its live preview, the preview itself.

The preview's subject and text come back as a fragment; its HTML is shown in a sandboxed
frame posted to `routes.template_html` (no script runs, the mail's own inline styles do).
"""

from __future__ import annotations

import json
from typing import Any

from dashboard_extension.graph import run
from dashboard_extension.views import Call, Problem, Rendered, check, read
from dashboard_extension.views.flows import CONFIGURATION
from plugin.kit.bodies import parse_json

STARTER: dict[str, Any] = {
    "": {
        "subject": "Thank you, {{ customer.first_name or 'friend' }}",
        "html": "<html><body><p>Hello {{ customer.first_name }},</p>"
        "<p>Thank you for your order.</p></body></html>",
        "text": "Hello {{ customer.first_name }},\n\nThank you for your order.",
    }
}


def locales(contents: dict[str, Any]) -> list[str]:
    return ["default" if k == "" else k for k in sorted(contents or {})]


async def _catalogue(call: Call) -> dict[str, Any]:
    answer = await read(call, "message_templates")
    return answer.data or {}


async def template_list(call: Call) -> Rendered:
    data = await _catalogue(call)
    rows = [{**t, "locales": locales(t["contents"])} for t in data["messageTemplates"]]
    held = data["viewer"]["permissions"]
    return Rendered(
        "fragments/templates.html",
        {"templates": rows, "can_edit": all(p in held for p in CONFIGURATION)},
    )


async def template_editor(call: Call) -> Rendered:
    data = await _catalogue(call)
    key = call.param("template")
    template = None
    if key:
        template = next((t for t in data["messageTemplates"] if t["key"] == key), None)
        if template is None:
            raise Problem(404, "No such template", f"The shop has no template {key!r}.")
    contents = template["contents"] if template else STARTER
    fallback = contents.get("") or {}
    held = data["viewer"]["permissions"]
    return Rendered(
        "fragments/template_editor.html",
        {
            "template": template,
            "contents_json": json.dumps(contents, indent=2, ensure_ascii=False),
            "fallback": fallback,
            "customers": data["customers"]["nodes"],
            "can_edit": all(p in held for p in CONFIGURATION),
        },
    )


async def template_preview(call: Call) -> Rendered:
    """Subject and text of unsaved contents; a template error is shown in place."""
    raw = call.param("contents") or ""
    try:
        contents = parse_json(raw)
    except ValueError as error:
        return Rendered("fragments/template_preview.html", {"error": f"Not JSON: {error}"})
    variables = {
        "contents": contents,
        "customerId": call.param("customerId"),
        "language": call.param("language"),
    }
    answer = check(await run(call.api, "template_preview", variables))
    shown = (answer.data or {}).get("messageTemplatePreview")
    if shown is None:
        return Rendered("fragments/template_preview.html", {"error": answer.first_message()})
    return Rendered("fragments/template_preview.html", {"shown": shown, "error": None})
