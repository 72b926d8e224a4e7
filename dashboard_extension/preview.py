"""The HTML of a template preview, for a sandboxed frame inside the template editor.

A mail's HTML needs its own inline styles, which the pages' policy (`style-src 'self'`)
forbids, and must never run a script. So the editor posts the unsaved contents (with the
dashboard's token, in the form body, never in a URL) into a frame with the `sandbox`
attribute, and this answers the rendered HTML under a policy of its own: inline styles
and `data:` images only, no script, no request anywhere, framed by the app's pages only.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dashboard_extension.framing import dashboard_origins
from dashboard_extension.graph import open_api, run
from plugin.context import AppContext
from plugin.kit.bodies import BadContentLength, BodyTooLarge, InvalidJson, parse_json, read_body

MAX_FORM_FIELDS = 20


def policy(origins: list[str]) -> str:
    ancestors = " ".join(["'self'", *origins])
    return (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )


def _page(html: str, status: int, origins: list[str]) -> Response:
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = policy(origins)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _message(text: str) -> str:
    return (
        '<!doctype html><meta charset="utf-8"><body style="font:14px sans-serif;color:#c92a2a">'
        f"<p>{escape(text)}</p></body>"
    )


async def template_html(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    try:
        body = await read_body(request, ctx.settings.max_dashboard_body_bytes)
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except BodyTooLarge:
        return _page(_message("The template is too large to preview."), 413, [])
    except (BadContentLength, ValueError):
        return _page(_message("The form could not be read."), 400, [])
    form = {k: v[0] for k, v in fields.items()}
    api_url = form.get("saleorApiUrl", "")
    origins = await dashboard_origins(ctx, api_url)
    try:
        contents = parse_json(form.get("contents") or "")
    except InvalidJson:
        return _page(_message("The template is not valid JSON."), 400, origins)
    headers = {"authorization-bearer": form.get("token", ""), "saleor-api-url": api_url}
    api = await open_api(ctx, headers)
    try:
        answer = await run(
            api,
            "template_preview",
            {
                "contents": contents,
                "customerId": form.get("customerId") or None,
                "language": form.get("language") or None,
            },
        )
    finally:
        await api.close()
    shown = (answer.data or {}).get("messageTemplatePreview")
    if shown is None:
        status = 401 if not answer.authenticated else 400
        return _page(_message(answer.first_message()), status, origins)
    html = str(shown["html"]) or f"<pre>{escape(shown['text'])}</pre>"
    return _page(html, 200, origins)
