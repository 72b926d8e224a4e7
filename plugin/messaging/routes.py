"""Public links `/l/…`: unsubscribe (page + RFC 8058 one-click POST), the preference page
per topic, the open pixel and click redirects. Every token is signed; a click goes only
to a URL recorded for that message; bad tokens get a plain 404, never a 500."""

from __future__ import annotations

import base64
from datetime import datetime
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.kit.after_commit import unit_of_work
from plugin.kit.bodies import BadContentLength, BodyTooLarge, read_body
from plugin.messaging.consent import opted_out_topics, set_topic
from plugin.messaging.links import Links
from plugin.messaging.models import Channel, Flow, Message
from plugin.messaging.sending import links_for
from plugin.profiles.models import Profile
from plugin.timeline.service import record

MAX_FORM_FIELDS = 100
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_pages = Environment(autoescape=True)
PAGE = _pages.from_string(
    """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:36em;margin:2em auto">
<h1>{{ title }}</h1>{% if note %}<p>{{ note }}</p>{% endif %}
{% if form == "unsubscribe" %}
<form method="post"><input type="hidden" name="scope" value="topic">
<button>Stop “{{ topic }}” e-mails</button></form>
<form method="post"><input type="hidden" name="scope" value="all">
<button>Stop all marketing {{ channel }} messages</button></form>
<p><a href="{{ preferences_url }}">Choose topics</a></p>
{% elif form == "preferences" %}
<form method="post">{% for topic, on in topics %}
<label><input type="checkbox" name="topic" value="{{ topic }}"{% if on %} checked{% endif %}>
{{ topic }}</label><br>{% endfor %}<button>Save</button></form>
{% endif %}</body></html>"""
)


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _page(status: int = 200, **values: object) -> HTMLResponse:
    return HTMLResponse(PAGE.render(**values), status_code=status)


def _not_found() -> HTMLResponse:
    return _page(404, title="This link is not valid", note="It may have been cut or changed.")


class FormRefused(Exception):
    def __init__(self, status: int, note: str) -> None:
        super().__init__(note)
        self.status, self.note = status, note


async def _form(request: Request) -> dict[str, list[str]]:
    """The posted form, read under `MAX_LINK_FORM_BYTES` (a form here is tiny)."""
    try:
        body = await read_body(request, _ctx(request).settings.max_link_form_bytes)
        return parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except BodyTooLarge:
        raise FormRefused(413, "The form is too large.") from None
    except (BadContentLength, ValueError):
        raise FormRefused(400, "The form could not be read.") from None


def _refused(refused: FormRefused) -> HTMLResponse:
    return _page(refused.status, title="This form was not accepted", note=refused.note)


async def _message(ctx: AppContext, links: Links, token: str, kind: str) -> Message | None:
    values = links.read(token, kind)
    if values is None or not isinstance(values.get("m"), int):
        return None
    async with ctx.db.session() as session:
        return await session.get(Message, values["m"])


async def unsubscribe(request: Request) -> Response:
    ctx, links = _ctx(request), links_for(_ctx(request))
    message = await _message(ctx, links, request.path_params["token"], "u")
    if message is None:
        return _not_found()
    if request.method == "GET":
        return _page(
            title="Unsubscribe",
            form="unsubscribe",
            topic=message.topic,
            channel=message.channel.value,
            preferences_url=links.preferences(message.installation_id, message.profile_id),
        )
    try:
        form = await _form(request)
    except FormRefused as refused:
        return _refused(refused)
    # RFC 8058 one-click (`List-Unsubscribe=One-Click`) means "no more of these lists":
    # every marketing message on this channel, as a mail client's button promises.
    one_click = "List-Unsubscribe" in form
    scope = "all" if one_click else (form.get("scope") or ["topic"])[0]
    topic = "*" if scope == "all" else message.topic
    source = "one-click unsubscribe" if one_click else "unsubscribe link"
    async with unit_of_work(ctx.db) as session:
        profile = await session.get(Profile, message.profile_id)
        if profile is not None:
            await set_topic(
                session,
                profile,
                message.channel,
                topic,
                subscribed=False,
                source=f"{source} (message {message.id})",
                now=utcnow(),
            )
    if one_click:
        return Response(status_code=200)
    what = "any marketing messages" if topic == "*" else f"“{topic}” messages"
    return _page(title="You are unsubscribed", note=f"You will not get {what} from us again.")


async def preferences(request: Request) -> Response:
    ctx, links = _ctx(request), links_for(_ctx(request))
    values = links.read(request.path_params["token"], "p")
    if values is None or not isinstance(values.get("p"), int):
        return _not_found()
    wanted: set[str] = set()
    if request.method == "POST":  # read before the transaction: a slow body holds nothing
        try:
            wanted = set((await _form(request)).get("topic", []))
        except FormRefused as refused:
            return _refused(refused)
    async with unit_of_work(ctx.db) as session:
        profile = await session.get(Profile, values["p"])
        if profile is None or profile.installation_id != values.get("i"):
            return _not_found()
        topics = sorted(
            set(
                await session.scalars(
                    select(Flow.topic).where(
                        Flow.installation_id == profile.installation_id, Flow.marketing.is_(True)
                    )
                )
            )
        )
        if request.method == "POST":
            now = utcnow()
            for topic in topics:
                await set_topic(
                    session,
                    profile,
                    Channel.EMAIL,
                    topic,
                    subscribed=topic in wanted,
                    source="preference page",
                    now=now,
                )
        off = await opted_out_topics(session, profile.id)
    shown = [(t, ("email", t) not in off and ("email", "*") not in off) for t in topics]
    note = "Saved." if request.method == "POST" else "Choose what we may write to you about."
    return _page(title="Your e-mail preferences", form="preferences", topics=shown, note=note)


async def _touch(ctx: AppContext, message_id: int, clicked: bool, now: datetime) -> None:
    """First open / first click of a message: stamped once, on the timeline once."""
    async with unit_of_work(ctx.db) as session:
        message = await session.get(Message, message_id)
        if message is None:
            return
        first_open = message.opened_at is None
        first_click = clicked and message.clicked_at is None
        if first_open:
            message.opened_at = now
        if first_click:
            message.clicked_at = now
        for kind, happened in (("message_opened", first_open), ("message_clicked", first_click)):
            if happened:
                await record(
                    session,
                    installation_id=message.installation_id,
                    profile_id=message.profile_id,
                    kind=kind,
                    occurred_at=now,
                    subject_type="message",
                    subject_id=str(message.id),
                    summary=f"{kind.split('_')[1].capitalize()} “{message.subject or ''}”",
                    data={"message_id": message.id, "flow_id": message.flow_id},
                    dedup_key=f"message:{message.id}:{kind}",
                )


async def open_pixel(request: Request) -> Response:
    ctx, links = _ctx(request), links_for(_ctx(request))
    message = await _message(ctx, links, request.path_params["token"], "o")
    if message is not None:
        await _touch(ctx, message.id, False, utcnow())
    headers = {"Cache-Control": "no-store"}
    return Response(PIXEL, media_type="image/gif", headers=headers)


async def click(request: Request) -> Response:
    ctx, links = _ctx(request), links_for(_ctx(request))
    values = links.read(request.path_params["token"], "c")
    message = await _message(ctx, links, request.path_params["token"], "c")
    index = values.get("l") if values else None
    recorded = (message.links or []) if message is not None else []
    if message is None or not isinstance(index, int) or not 0 <= index < len(recorded):
        return _not_found()
    await _touch(ctx, message.id, True, utcnow())
    return RedirectResponse(recorded[index], status_code=302)


def routes() -> list[Route]:
    return [
        Route("/l/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/l/p/{token}", preferences, methods=["GET", "POST"]),
        Route("/l/o/{token}", open_pixel, methods=["GET"]),
        Route("/l/c/{token}", click, methods=["GET"]),
    ]
