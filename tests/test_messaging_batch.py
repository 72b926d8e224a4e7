"""Batched sending: one claim for many messages keeps every per-message guarantee —
consent, suppression, caps (also between two messages of one batch), render failures,
bounces and retries each settle their own message — a send job takes the other due
messages of its shop, and neither a worker killed mid-batch nor a connection lost
mid-message ever sends anything twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.channels import Outgoing, PermanentError, UnknownOutcome
from plugin.messaging.channels.email import SmtpProvider, compose
from plugin.messaging.channels.email import SmtpServer as SmtpServerAddress
from plugin.messaging.models import Channel, Message, MessageStatus, Undeliverable
from plugin.messaging.sending import (
    MessageRequest,
    deliver,
    deliver_many,
    deliver_with_due,
    give_up_stale,
    queue,
)
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry
from tests.conftest import new_installation
from tests.messaging_doubles import SmtpServer, add_template, configure, make_customer

# Next year: the app's own worker (when another test started it) never finds these due.
LATER = utcnow() + timedelta(days=366)
HELLO = {
    "": {
        "subject": "Hello {{ customer.first_name }}",
        "html": '<p>Hi {{ customer.first_name }}</p><a href="https://shop.example/x">Go</a>',
        "text": "Hi {{ customer.first_name }} {{ unsubscribe_url }}",
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


async def _shop(db: Database, smtp: SmtpServer, **settings: object) -> int:
    installation_id = await new_installation(db)
    await configure(db, installation_id, smtp_url=smtp.url, **settings)
    await add_template(db, installation_id, "hello", HELLO)
    await add_template(
        db, installation_id, "broken", {"": {"subject": "x", "text": "{{ order.number }}"}}
    )
    return installation_id


async def _queue(
    db: Database,
    installation_id: int,
    profile_id: int,
    key: str,
    *,
    marketing: bool = True,
    template: str = "hello",
    at: object = LATER,
) -> int:
    async with unit_of_work(db) as session:
        message_id = await queue(
            session,
            MessageRequest(installation_id, profile_id, key, Channel.EMAIL, template, marketing),
            at,  # type: ignore[arg-type]
        )
    assert message_id is not None
    return message_id


async def _statuses(db: Database, ids: list[int]) -> dict[int, Message]:
    async with db.session() as session:
        rows = await session.scalars(select(Message).where(Message.id.in_(ids)))
        return {m.id: m for m in rows}


async def test_one_batch_settles_each_message_on_its_own(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp, caps={"email": {"16h": 1}})
    ann = await make_customer(db, installation_id, "ann@example.com", first_name="Ann")
    bob = await make_customer(db, installation_id, "bob@example.com", first_name="Bob")
    shy = await make_customer(db, installation_id, "shy@example.com", consent=False)
    gone = await make_customer(db, installation_id, "gone@example.com", first_name="G")
    busy = await make_customer(db, installation_id, "busy@example.com", first_name="B")
    smtp.inbox.refuse["gone@example.com"] = "550 5.1.1 No such user"
    smtp.inbox.refuse["busy@example.com"] = "451 4.3.0 Try again later"
    ids = {
        "ann": await _queue(db, installation_id, ann, "ann-1"),
        "ann_again": await _queue(db, installation_id, ann, "ann-2"),  # over the 16 h cap
        "bob": await _queue(db, installation_id, bob, "bob-1"),
        "shy": await _queue(db, installation_id, shy, "shy-1"),
        "shy_receipt": await _queue(db, installation_id, shy, "shy-r", marketing=False),
        "gone": await _queue(db, installation_id, gone, "gone-1"),
        "busy": await _queue(db, installation_id, busy, "busy-1"),
        "broken": await _queue(
            db, installation_id, bob, "bob-b", template="broken", marketing=False
        ),
        "later": await _queue(db, installation_id, bob, "bob-l", at=LATER + timedelta(days=1)),
    }
    taken = await deliver_many(app_ctx, list(ids.values()), now=LATER)
    assert taken == 3  # ann, bob, the receipt
    found = await _statuses(db, list(ids.values()))
    status = {name: found[i].status for name, i in ids.items()}
    assert status == {
        "ann": MessageStatus.SENT,
        "ann_again": MessageStatus.QUEUED,
        "bob": MessageStatus.SENT,
        "shy": MessageStatus.SKIPPED,
        "shy_receipt": MessageStatus.SENT,
        "gone": MessageStatus.FAILED,
        "busy": MessageStatus.QUEUED,
        "broken": MessageStatus.FAILED,
        "later": MessageStatus.QUEUED,
    }
    capped = found[ids["ann_again"]]
    assert capped.next_attempt_at == LATER + timedelta(hours=16)
    assert capped.attempts == 0
    assert "frequency cap" in (capped.postponed_reason or "")
    retry = found[ids["busy"]]
    assert retry.attempts == 1
    assert retry.next_attempt_at is not None
    assert retry.next_attempt_at > LATER
    assert "451" in (retry.error or "")
    assert found[ids["shy"]].error == "no marketing consent for email"
    assert (found[ids["broken"]].error or "").startswith("default.text:")
    assert found[ids["later"]].attempts == 0
    assert found[ids["bob"]].links == ["https://shop.example/x"]
    assert found[ids["bob"]].subject == "Hello Bob"
    (mail,) = smtp.inbox.to("bob@example.com")
    assert mail["Subject"] == "Hello Bob"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(smtp.inbox.to("ann@example.com")) == 1
    assert len(smtp.inbox.to("shy@example.com")) == 1  # the receipt only
    async with db.session() as session:
        bounced = await session.scalar(
            select(Undeliverable.reason).where(
                Undeliverable.installation_id == installation_id,
                Undeliverable.address == "gone@example.com",
            )
        )
        kinds = sorted(
            (e.subject_id, e.kind)
            for e in await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.installation_id == installation_id,
                    TimelineEntry.subject_type == "message",
                )
            )
        )
    assert bounced is not None
    assert "No such user" in bounced
    assert kinds == sorted(
        [
            (str(ids["ann"]), "message_sent"),
            (str(ids["bob"]), "message_sent"),
            (str(ids["shy_receipt"]), "message_sent"),
            (str(ids["shy"]), "message_skipped"),
            (str(ids["gone"]), "message_failed"),
            (str(ids["broken"]), "message_failed"),
        ]
    )
    # the same batch again (a redelivered job) sends nothing more
    assert await deliver_many(app_ctx, list(ids.values()), now=LATER) == 0
    assert len(smtp.inbox.messages) == 3


async def test_a_send_job_takes_the_other_due_messages_of_its_shop(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    other_shop = await _shop(db, smtp)
    ids = []
    for i in range(5):
        profile_id = await make_customer(db, installation_id, f"due{i}@example.com")
        ids.append(await _queue(db, installation_id, profile_id, f"due-{i}"))
    future_profile = await make_customer(db, installation_id, "future@example.com")
    future = await _queue(
        db, installation_id, future_profile, "future", at=LATER + timedelta(hours=1)
    )
    elsewhere_profile = await make_customer(db, other_shop, "elsewhere@example.com")
    elsewhere = await _queue(db, other_shop, elsewhere_profile, "elsewhere")

    assert await deliver_with_due(app_ctx, ids[2], LATER) == 5
    # the other jobs find their message taken; a not-yet-due message and another shop's
    # wait for their own turn
    for message_id in ids:
        assert await deliver_with_due(app_ctx, message_id, LATER) == 0
    found = await _statuses(db, [*ids, future, elsewhere])
    assert {found[i].status for i in ids} == {MessageStatus.SENT}
    assert found[future].status is MessageStatus.QUEUED
    assert found[elsewhere].status is MessageStatus.QUEUED
    assert sorted(m["To"] for m in smtp.inbox.messages) == [f"due{i}@example.com" for i in range(5)]


def test_compose_refuses_header_injection_and_encodes_what_is_not_ascii() -> None:
    import email
    from email.policy import default

    message_id, data = compose(
        Outgoing(
            to="zoe@example.com",
            subject="Bonjour Zoé",
            text="Salut Zoé\n.une ligne",
            html="<p>Salut Zoé</p>",
            sender="shop@example.com",
            headers={"List-Unsubscribe": "<https://crm.example/l/u/abc>"},
        ),
        "Boutique Zoé",
    )
    assert data.isascii()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    parsed = email.message_from_bytes(data, policy=default)
    assert parsed["Subject"] == "Bonjour Zoé"
    assert parsed["From"] == "Boutique Zoé <shop@example.com>"
    assert parsed["Message-ID"] == message_id
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().splitlines() == ["Salut Zoé", ".une ligne"]
    assert html.get_content().strip() == "<p>Salut Zoé</p>"
    for bad in ("a@example.com\r\nBcc: everyone@example.com", "a@example.com\nX: y"):
        with pytest.raises(ValueError, match="line break"):
            compose(Outgoing(to=bad, text="t", sender="shop@example.com"))


async def test_a_recipient_that_cannot_be_written_fails_only_its_message(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    installation_id = await _shop(db, smtp)
    sneaky = await make_customer(db, installation_id, "x@example.com\r\nBcc: all@example.com")
    fine = await make_customer(db, installation_id, "fine@example.com", first_name="F")
    bad_id = await _queue(db, installation_id, sneaky, "sneaky", marketing=False)
    good_id = await _queue(db, installation_id, fine, "fine")
    assert await deliver_many(app_ctx, [bad_id, good_id], now=LATER) == 1
    found = await _statuses(db, [bad_id, good_id])
    assert found[bad_id].status is MessageStatus.FAILED
    assert "line break" in (found[bad_id].error or "")
    assert found[good_id].status is MessageStatus.SENT
    assert [m["To"] for m in smtp.inbox.messages] == ["fine@example.com"]


KILLABLE_BATCH = """
import asyncio, sys
from datetime import datetime
from plugin.context import AppContext
from plugin.messaging import sending
from plugin.settings import Settings

async def main() -> None:
    ctx = AppContext.create(Settings())
    await ctx.open()
    ids = [int(x) for x in sys.argv[1].split(",")]
    sending.HAND_GROUP = int(sys.argv[3])
    await sending.deliver_many(ctx, ids, datetime.fromisoformat(sys.argv[2]))

asyncio.run(main())
"""


async def _kill_a_worker_mid_batch(
    db: Database, smtp: SmtpServer, prefix: str, *, group: int
) -> list[int]:
    """Four transactional messages queued, a worker process sending them in groups of
    `group`, killed while the SMTP server holds its answer to the first; their ids."""
    installation_id = await _shop(db, smtp)
    ids = []
    for i in range(4):
        profile_id = await make_customer(db, installation_id, f"{prefix}{i}@example.com")
        ids.append(await _queue(db, installation_id, profile_id, f"{prefix}-{i}", marketing=False))
    smtp.inbox.stall_seconds = 30
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLABLE_BATCH,
            ",".join(map(str, ids)),
            LATER.isoformat(),
            str(group),
        ],
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
    return ids


async def test_worker_killed_mid_batch_never_sends_any_of_it_twice(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """The whole batch is SENDING (committed) before the first message goes out: the
    worker dies while the server holds its answer to the first; nothing of the batch is
    handed to the server again, and the tick later marks the rest "outcome unknown"."""
    ids = await _kill_a_worker_mid_batch(db, smtp, "k", group=25)
    arrived_before = len(smtp.inbox.messages)
    assert 1 <= arrived_before <= 3  # three lanes at most were under way
    found = await _statuses(db, ids)
    assert {m.status for m in found.values()} == {MessageStatus.SENDING}
    assert await deliver_many(app_ctx, ids, now=LATER) == 0
    for message_id in ids:
        await deliver(app_ctx, message_id, now=LATER, handed_out=True)
    async with unit_of_work(db) as session:
        assert await give_up_stale(session, LATER + timedelta(hours=2)) >= len(ids)
    found = await _statuses(db, ids)
    assert {m.status for m in found.values()} == {MessageStatus.FAILED}
    assert all("outcome unknown" in (m.error or "") for m in found.values())
    assert len(smtp.inbox.messages) == arrived_before


async def test_a_connection_lost_mid_message_is_never_retried(smtp: SmtpServer) -> None:
    """Refused before DATA: nothing arrived (stop or retry). Timed out while the server
    held its answer to the message: it may have arrived, so the outcome is unknown and
    the message is not sent again."""
    provider = SmtpProvider(SmtpServerAddress.parse(smtp.url), timeout=1)
    fine = Outgoing(to="ok@example.com", text="t", subject="s", sender="shop@example.com")
    unroutable = Outgoing(to="zoé@exämple.com", text="t", subject="s", sender="shop@example.com")
    first, second = await provider.send_many([unroutable, fine])
    assert isinstance(first, PermanentError)
    assert isinstance(second, str)
    smtp.inbox.stall_seconds = 3
    (stalled,) = await provider.send_many([fine])
    smtp.inbox.stall_seconds = 0
    assert isinstance(stalled, UnknownOutcome)
    assert [m["To"] for m in smtp.inbox.messages] == ["ok@example.com", "ok@example.com"]


async def test_two_workers_never_break_a_customers_cap_together(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """Two batches claimed at the same moment, each with a marketing e-mail for the same
    customer under a cap of one per 16 h: one goes, the other waits for the next slot
    (the second claim waits on the customer until the first's send is committed)."""
    installation_id = await _shop(db, smtp, caps={"email": {"16h": 1}})
    ann = await make_customer(db, installation_id, "cap@example.com", first_name="Ann")
    first = await _queue(db, installation_id, ann, "cap-1")
    second = await _queue(db, installation_id, ann, "cap-2")
    other = AppContext.create(Settings())  # a second worker: its own connections
    await other.open()
    try:
        sent = await asyncio.gather(
            deliver_many(app_ctx, [first], now=LATER),
            deliver_many(other, [second], now=LATER),
        )
    finally:
        await other.close()
    assert sorted(sent) == [0, 1]
    found = await _statuses(db, [first, second])
    assert sorted(m.status for m in found.values()) == [MessageStatus.QUEUED, MessageStatus.SENT]
    waiting = next(m for m in found.values() if m.status is MessageStatus.QUEUED)
    assert waiting.next_attempt_at == LATER + timedelta(hours=16)
    assert len(smtp.inbox.to("cap@example.com")) == 1


async def test_a_worker_killed_mid_batch_leaves_only_its_current_group_unknown(
    db: Database, smtp: SmtpServer, app_ctx: AppContext
) -> None:
    """Groups of two: the worker dies while the server holds its answer in the first
    group; that group's outcome stays unknown (never retried), the group it never
    reached is queued again by the tick and sent exactly once."""
    ids = await _kill_a_worker_mid_batch(db, smtp, "g", group=2)
    arrived_before = len(smtp.inbox.messages)
    assert 1 <= arrived_before <= 2  # only the first group was under way
    async with unit_of_work(db) as session:
        assert await give_up_stale(session, LATER + timedelta(hours=2)) == 4
    found = await _statuses(db, ids)
    handed = {i for i in ids if found[i].status is MessageStatus.FAILED}
    again = {i for i in ids if found[i].status is MessageStatus.QUEUED}
    assert len(handed) == 2
    assert len(again) == 2
    assert all("outcome unknown" in (found[i].error or "") for i in handed)
    assert await deliver_many(app_ctx, sorted(again), now=LATER + timedelta(hours=2)) == 2
    found = await _statuses(db, ids)
    assert {found[i].status for i in again} == {MessageStatus.SENT}
    assert len(smtp.inbox.messages) == arrived_before + 2
    for i in range(4):  # nobody got an e-mail twice
        assert len(smtp.inbox.to(f"g{i}@example.com")) <= 1
