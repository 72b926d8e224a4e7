"""The public `/l/…` links over HTTP: one-click unsubscribe (RFC 8058), the unsubscribe and
preference pages, the open pixel and the click redirect (recorded URLs only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Flow, Message, TopicOptOut
from plugin.messaging.sending import MessageRequest, deliver, links_for, queue
from plugin.profiles.models import ConsentState, Identity
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from tests.conftest import RunningApp, new_installation
from tests.messaging_doubles import SmtpServer, add_template, configure, make_customer

LATER = utcnow() + timedelta(days=366)
LINKED = {
    "": {
        "subject": "Hi",
        "html": '<a href="https://shop.example/a?x=1&amp;y=2">A</a>'
        '<a href="https://shop.example/b">B</a>',
        "text": "Hi",
    }
}


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


async def _sent(db: Database, ctx: AppContext, smtp: SmtpServer, email: str) -> Message:
    installation_id = await new_installation(db)
    await configure(db, installation_id, smtp_url=smtp.url)
    await add_template(db, installation_id, "linked", LINKED)
    async with unit_of_work(db) as session:
        for topic in ("offers", "reviews"):
            session.add(
                Flow(
                    installation_id=installation_id,
                    key=topic,
                    name=topic,
                    topic=topic,
                    trigger={"type": "order_paid"},
                    steps=[{"type": "send", "template": "linked"}],
                )
            )
    profile_id = await make_customer(db, installation_id, email, first_name="L")
    async with unit_of_work(db) as session:
        message_id = await queue(
            session,
            MessageRequest(
                installation_id, profile_id, f"links-{email}", Channel.EMAIL, "linked", True
            ),
            LATER,
        )
    assert message_id is not None
    await deliver(ctx, message_id, now=LATER)
    async with db.session() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


async def test_one_click_unsubscribe_and_pages(
    app_server: RunningApp, db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    message = await _sent(db, app_ctx, smtp, "unsub@example.com")
    links = links_for(app_ctx)
    (mail,) = smtp.inbox.to("unsub@example.com")
    header = str(mail["List-Unsubscribe"]).strip()
    path = header[header.index("/l/u/") : -1]
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        page = await client.get(path)
        assert page.status_code == 200
        assert "Stop “offers” e-mails" in page.text
        # what a mail client sends for the one-click button
        one_click = await client.post(
            path,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        forged = await client.post(path[:-3] + "xyz", content="List-Unsubscribe=One-Click")
        assert forged.status_code == 404
        other_kind = await client.get("/l/u/" + links.token("p", i=1, p=message.profile_id))
        assert other_kind.status_code == 404

    async with db.session() as session:
        identity = await session.scalar(
            select(Identity).where(Identity.profile_id == message.profile_id)
        )
        topics = list(
            await session.scalars(
                select(TopicOptOut.topic).where(TopicOptOut.profile_id == message.profile_id)
            )
        )
        entry = await session.scalar(
            select(TimelineEntry).where(
                TimelineEntry.profile_id == message.profile_id,
                TimelineEntry.kind == "consent_changed",
            )
        )
    assert identity is not None
    assert identity.marketing_consent is ConsentState.DENIED
    assert identity.consent_source == f"one-click unsubscribe (message {message.id})"
    assert topics == ["*"]
    assert entry is not None
    assert entry.summary.startswith("Unsubscribed from all marketing")


async def test_preference_page_per_topic(
    app_server: RunningApp, db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    message = await _sent(db, app_ctx, smtp, "prefs@example.com")
    path = links_for(app_ctx).preferences(message.installation_id, message.profile_id)
    path = path[path.index("/l/p/") :]
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        page = await client.get(path)
        assert page.status_code == 200
        assert 'value="offers" checked' in page.text
        assert 'value="reviews" checked' in page.text
        saved = await client.post(
            path,
            content="topic=reviews",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert saved.status_code == 200
        assert 'value="offers">' in saved.text
        assert 'value="reviews" checked' in saved.text
        tampered = await client.get(path.replace("/l/p/", "/l/p/x"))
        assert tampered.status_code == 404
    async with db.session() as session:
        topics = list(
            await session.scalars(
                select(TopicOptOut.topic).where(TopicOptOut.profile_id == message.profile_id)
            )
        )
    assert topics == ["offers"]


async def test_open_pixel_and_click_redirect_only_to_recorded_urls(
    app_server: RunningApp, db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    message = await _sent(db, app_ctx, smtp, "click@example.com")
    assert message.links == ["https://shop.example/a?x=1&y=2", "https://shop.example/b"]
    links = links_for(app_ctx)
    base = links.base_url
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        pixel = await client.get(links.open_pixel(message.id).removeprefix(base))
        assert pixel.headers["content-type"] == "image/gif"
        click = await client.get(links.click(message.id, 0).removeprefix(base))
        assert click.status_code == 302
        assert click.headers["location"] == "https://shop.example/a?x=1&y=2"
        beyond = await client.get(links.click(message.id, 2).removeprefix(base))
        assert beyond.status_code == 404
        assert "location" not in beyond.headers
    async with db.session() as session:
        stored = await session.get(Message, message.id)
        kinds = list(
            await session.scalars(
                select(TimelineEntry.kind)
                .where(TimelineEntry.profile_id == message.profile_id)
                .order_by(TimelineEntry.id)
            )
        )
    assert stored is not None
    assert stored.opened_at is not None
    assert stored.clicked_at is not None
    assert kinds == ["message_sent", "message_opened", "message_clicked"]
