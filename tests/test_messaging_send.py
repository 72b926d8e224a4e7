"""Sending, priority 1: sandboxed templates, e-mail over a real SMTP server with one-click
unsubscribe headers, consent and suppression, retries, hard bounces, render failures, and
at most one send per idempotency key even when the worker is killed mid-send."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging import sending
from plugin.messaging.models import Channel, Message, MessageStatus, Undeliverable
from plugin.messaging.scheduler import _due_messages
from plugin.messaging.sending import MessageRequest, deliver, give_up_stale, queue
from plugin.messaging.templates import TemplateProblem, render, validate_contents
from plugin.messaging.transactional import send_transactional
from plugin.profiles.models import Identity, IdentityKind
from plugin.profiles.suppression import suppression_hash
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from tests.conftest import new_installation
from tests.messaging_doubles import SmtpServer, add_template, configure, make_customer

# Messages are queued for next year and delivered with that clock: the app's own worker
# (running when another test started the app) never finds them due and never races us.
LATER = utcnow() + timedelta(days=366)

WELCOME = {
    "": {
        "subject": "Hello {{ customer.first_name }}",
        "html": '<p>Hi {{ customer.first_name }}</p><a href="https://shop.example/new">New</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        "text": "Hi {{ customer.first_name }} — {{ unsubscribe_url }}",
    },
    "fr": {
        "subject": "Bonjour {{ customer.first_name }}",
        "html": "<p>Salut {{ customer.first_name }}</p>",
        "text": "Salut {{ customer.first_name }}",
    },
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


async def _shop(db: Database, smtp: SmtpServer) -> int:
    installation_id = await new_installation(db)
    await configure(db, installation_id, smtp_url=smtp.url, sender_email="shop@example.com")
    await add_template(db, installation_id, "welcome", WELCOME)
    return installation_id


async def _queue(
    db: Database,
    installation_id: int,
    profile_id: int,
    key: str,
    *,
    marketing: bool = True,
    template: str = "welcome",
) -> int:
    async with unit_of_work(db) as session:
        message_id = await queue(
            session,
            MessageRequest(
                installation_id=installation_id,
                profile_id=profile_id,
                idempotency_key=key,
                channel=Channel.EMAIL,
                template_key=template,
                marketing=marketing,
                topic="offers",
            ),
            LATER,
        )
    assert message_id is not None
    return message_id


async def _message(db: Database, message_id: int) -> Message:
    async with db.session() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


def test_templates_are_sandboxed_escaped_and_localised() -> None:
    with pytest.raises(TemplateProblem, match=r"fr\.html"):
        validate_contents(
            {"": {"subject": "s", "text": "t"}, "fr": {"html": "{% if %}"}}, needs_subject=False
        )
    with pytest.raises(TemplateProblem, match="default.subject"):
        validate_contents({"": {"text": "t"}}, needs_subject=True)
    contents = validate_contents(
        {
            "": {"subject": "Hi {{ name }}", "html": "<b>{{ name }}</b>", "text": "{{ name }}"},
            "fr": {"subject": "Salut {{ name }}", "text": "{{ name }}"},
        },
        needs_subject=True,
    )
    shown = render(contents, "fr-CA", {"name": "<Zoé>"})
    assert (shown.locale, shown.subject, shown.text) == ("fr", "Salut <Zoé>", "<Zoé>")
    english = render(contents, "de", {"name": "<Zoé>"})
    assert english.html == "<b>&lt;Zoé&gt;</b>"
    assert english.locale == ""
    # the sandbox refuses Python internals; unknown variables are errors, not blanks
    escape = validate_contents({"": {"text": "{{ ''.__class__.__mro__ }}"}}, needs_subject=False)
    with pytest.raises(TemplateProblem, match="unsafe|attribute"):
        render(escape, None, {})
    with pytest.raises(TemplateProblem, match="undefined"):
        render(contents, None, {})


async def test_email_goes_over_smtp_with_both_parts_and_one_click_headers(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(
        db, installation_id, "zoe@example.com", first_name="Zoé", language="fr-FR"
    )
    fr_id = await _queue(db, installation_id, profile_id, "fr-1")
    await deliver(app_ctx, fr_id, now=LATER)
    other = await make_customer(db, installation_id, "ann@example.com", first_name="Ann")
    message_id = await _queue(db, installation_id, other, "welcome-1")
    await deliver(app_ctx, message_id, now=LATER)

    (french,) = smtp.inbox.to("zoe@example.com")
    assert french["Subject"] == "Bonjour Zoé"
    (mail,) = smtp.inbox.to("ann@example.com")
    assert mail["From"] == "shop@example.com"
    assert mail["Subject"] == "Hello Ann"
    unsubscribe = str(mail["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<http")
    assert "/l/u/" in unsubscribe
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Hi Ann" in text.get_content()
    assert "/l/u/" in text.get_content()
    html_body = html.get_content()
    # the shop's link goes through the click redirect; the unsubscribe link does not
    assert "https://shop.example/new" not in html_body
    assert "/l/c/" in html_body
    assert "/l/o/" in html_body

    stored = await _message(db, message_id)
    assert stored.status is MessageStatus.SENT
    assert stored.recipient == "ann@example.com"
    assert stored.links == ["https://shop.example/new"]
    assert stored.subject == "Hello Ann"
    async with db.session() as session:
        kinds = list(
            await session.scalars(
                select(TimelineEntry.kind).where(TimelineEntry.profile_id == other)
            )
        )
    assert kinds == ["message_sent"]


async def test_one_message_per_idempotency_key(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "once@example.com", first_name="O")
    first = await _queue(db, installation_id, profile_id, "flow:1:step:2:run:3")
    async with unit_of_work(db) as session:
        again = await queue(
            session,
            MessageRequest(
                installation_id, profile_id, "flow:1:step:2:run:3", Channel.EMAIL, "welcome", True
            ),
            LATER,
        )
    assert again is None
    await asyncio.gather(deliver(app_ctx, first, now=LATER), deliver(app_ctx, first, now=LATER))
    await deliver(app_ctx, first, now=LATER, handed_out=True)
    assert len(smtp.inbox.to("once@example.com")) == 1


async def test_consent_marketing_versus_transactional_and_suppression(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    no_consent = await make_customer(
        db, installation_id, "nope@example.com", consent=False, first_name="N"
    )
    marketing = await _queue(db, installation_id, no_consent, "m-1")
    async with unit_of_work(db) as session:
        receipt = await send_transactional(
            session,
            installation_id=installation_id,
            profile_id=no_consent,
            template_key="welcome",
            dedup_key="receipt-1",
            now=LATER,
        )
    assert receipt is not None
    await deliver(app_ctx, marketing, now=LATER)
    await deliver(app_ctx, receipt, now=LATER)
    skipped = await _message(db, marketing)
    assert skipped.status is MessageStatus.SKIPPED
    assert skipped.error == "no marketing consent for email"
    assert (await _message(db, receipt)).status is MessageStatus.SENT
    assert len(smtp.inbox.to("nope@example.com")) == 1

    # an erased address is never written to again, not even a receipt
    erased = await make_customer(db, installation_id, "gone@example.com", first_name="G")
    async with unit_of_work(db) as session:
        from plugin.profiles.suppression import salt_for

        salt = await salt_for(session, installation_id)
        session.add(
            Identity(
                installation_id=installation_id,
                profile_id=erased,
                kind=IdentityKind.EMAIL,
                value=suppression_hash(salt, IdentityKind.EMAIL, "gone@example.com"),
            )
        )
    tx = await _queue(db, installation_id, erased, "tx-gone", marketing=False)
    await deliver(app_ctx, tx, now=LATER)
    assert (await _message(db, tx)).error == "address erased (suppression list)"
    assert smtp.inbox.to("gone@example.com") == []


async def test_transient_failure_retries_later_and_hard_bounce_stops(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    busy = await make_customer(db, installation_id, "busy@example.com", first_name="B")
    smtp.inbox.refuse["busy@example.com"] = "451 4.3.0 Try again later"
    message_id = await _queue(db, installation_id, busy, "busy-1")
    await deliver(app_ctx, message_id, now=LATER)
    waiting = await _message(db, message_id)
    assert waiting.status is MessageStatus.QUEUED
    assert waiting.attempts == 1
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at > LATER
    assert waiting.error is not None
    assert "451" in waiting.error
    await deliver(app_ctx, message_id, now=LATER)  # not due yet: nothing happens
    assert (await _message(db, message_id)).attempts == 1
    del smtp.inbox.refuse["busy@example.com"]
    await deliver(app_ctx, message_id, now=waiting.next_attempt_at)
    sent = await _message(db, message_id)
    assert sent.status is MessageStatus.SENT
    assert sent.attempts == 2
    assert len(smtp.inbox.to("busy@example.com")) == 1

    bad = await make_customer(db, installation_id, "nobody@example.com", first_name="X")
    smtp.inbox.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    bounced = await _queue(db, installation_id, bad, "bad-1")
    await deliver(app_ctx, bounced, now=LATER)
    failed = await _message(db, bounced)
    assert failed.status is MessageStatus.FAILED
    assert "550" in (failed.error or "")
    async with db.session() as session:
        marked = await session.scalar(
            select(Undeliverable.reason).where(
                Undeliverable.installation_id == installation_id,
                Undeliverable.address == "nobody@example.com",
            )
        )
    assert marked is not None
    assert "No such user" in marked
    later = await _queue(db, installation_id, bad, "bad-2", marketing=False)
    await deliver(app_ctx, later, now=LATER)
    assert (await _message(db, later)).error == "address marked undeliverable"


async def test_out_of_attempts_fails_for_good(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "slow@example.com", first_name="S")
    smtp.inbox.refuse["slow@example.com"] = "452 4.2.2 Mailbox full"
    message_id = await _queue(db, installation_id, profile_id, "slow-1")
    when = LATER
    for _ in range(app_ctx.settings.messaging_send_max_attempts):
        await deliver(app_ctx, message_id, now=when)
        when += timedelta(days=1)
    final = await _message(db, message_id)
    assert final.status is MessageStatus.FAILED
    assert final.attempts == app_ctx.settings.messaging_send_max_attempts
    assert (final.error or "").startswith("gave up after")


async def test_template_that_cannot_render_fails_the_message_visibly(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    await add_template(
        db, installation_id, "broken", {"": {"subject": "Hi", "text": "{{ order.number }}"}}
    )
    profile_id = await make_customer(db, installation_id, "broken@example.com", first_name="B")
    message_id = await _queue(db, installation_id, profile_id, "broken-1", template="broken")
    missing = await _queue(db, installation_id, profile_id, "missing-1", template="nope")
    await deliver(app_ctx, message_id, now=LATER)
    await deliver(app_ctx, missing, now=LATER)
    failed = await _message(db, message_id)
    assert failed.status is MessageStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("default.text:")
    assert (await _message(db, missing)).error == "default.template: no template 'nope'"
    assert smtp.inbox.to("broken@example.com") == []
    async with db.session() as session:
        summaries = list(
            await session.scalars(
                select(TimelineEntry.summary).where(
                    TimelineEntry.profile_id == profile_id,
                    TimelineEntry.kind == "message_failed",
                )
            )
        )
    assert len(summaries) == 2
    assert all(s.startswith("Message not sent") for s in summaries)


KILLABLE_WORKER = """
import asyncio, sys
from datetime import datetime
from plugin.context import AppContext
from plugin.messaging.sending import deliver
from plugin.settings import Settings

async def main() -> None:
    ctx = AppContext.create(Settings())
    await ctx.open()
    await deliver(ctx, int(sys.argv[1]), now=datetime.fromisoformat(sys.argv[2]))

asyncio.run(main())
"""


async def test_worker_killed_mid_send_never_sends_twice(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """The SMTP server takes the message, then the worker dies before it can record the
    outcome. Re-running the send, the tick's hand-out and a redelivered job must not send
    it again; the tick later marks it failed with an unknown outcome."""
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "kill@example.com", first_name="K")
    message_id = await _queue(db, installation_id, profile_id, "kill-1")
    smtp.inbox.stall_seconds = 30  # the server holds its "250" answer: the worker waits
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_WORKER, str(message_id), LATER.isoformat()],
        env=dict(os.environ),
        cwd=os.getcwd(),
    )
    try:
        arrived = await asyncio.to_thread(smtp.inbox.arrived.wait, 60)
        assert arrived, "the worker never reached the SMTP server"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    smtp.inbox.stall_seconds = 0
    assert worker.returncode == -signal.SIGKILL

    stuck = await _message(db, message_id)
    assert stuck.status is MessageStatus.SENDING
    assert stuck.attempts == 1
    await deliver(app_ctx, message_id, now=LATER)
    await deliver(app_ctx, message_id, now=LATER, handed_out=True)
    async with unit_of_work(db) as session:
        assert message_id not in await _due_messages(session, LATER + timedelta(hours=2))
    async with unit_of_work(db) as session:
        assert await give_up_stale(session, LATER + sending.STALE_SENDING * 2) >= 1
    final = await _message(db, message_id)
    assert final.status is MessageStatus.FAILED
    assert "outcome unknown" in (final.error or "")
    await deliver(app_ctx, message_id, now=LATER, handed_out=True)
    assert len(smtp.inbox.to("kill@example.com")) == 1
    async with db.session() as session:
        rows = await session.scalar(
            select(func.count()).where(
                Message.idempotency_key == "kill-1", Message.installation_id == installation_id
            )
        )
    assert rows == 1


async def test_retention_blanks_the_content_and_keeps_the_outcome(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    from plugin.messaging.retention import prune_message_bodies

    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "old@example.com", first_name="O")
    message_id = await _queue(db, installation_id, profile_id, "old-1")
    await deliver(app_ctx, message_id, now=LATER)
    async with unit_of_work(db) as session:
        await prune_message_bodies(session, LATER, timedelta(days=30))
    assert (await _message(db, message_id)).subject == "Hello O"  # too young: kept
    async with unit_of_work(db) as session:
        await prune_message_bodies(session, LATER + timedelta(days=31), timedelta(days=30))
    pruned = await _message(db, message_id)
    assert pruned.status is MessageStatus.SENT
    assert pruned.sent_at is not None
    assert (pruned.recipient, pruned.subject, pruned.variables, pruned.links) == (
        None,
        None,
        None,
        None,
    )
