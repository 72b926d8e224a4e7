"""Queueing and delivering messages, at most once each, many at a time.

`queue` inserts the message under its idempotency key (a second insert is a no-op) and
sends a job after commit. Delivery works in batches (`deliver_many`): one transaction
claims them (QUEUED → SENDING, under row locks skipped by other workers on PostgreSQL;
SQLite has one writer), the providers are called outside any transaction (e-mails over a
few shared SMTP connections), and a second transaction records every outcome. A worker
killed between the two leaves its batch SENDING: never handed to a provider again, and
the tick later marks those messages failed with "outcome unknown" — a possible loss,
never a duplicate. A connection lost while a message itself was on its way is the same
case: failed, "outcome unknown", not retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.upsert import insert_ignore
from plugin.kit.after_commit import enqueue_after_commit, unit_of_work
from plugin.messaging.channels import PermanentError, Result, UnknownOutcome, send_all
from plugin.messaging.claims import MESSAGE_CLAIM, STAFF_TOPIC, Claimed, backoff, claim
from plugin.messaging.links import Links
from plugin.messaging.models import Channel, Message, MessageStatus, Undeliverable
from plugin.messaging.notes import Note, write_notes

__all__ = ["MESSAGE_CLAIM", "STAFF_TOPIC"]
logger = logging.getLogger(__name__)
SEND_ACTOR = "messaging.send"
BATCH_ACTOR = "messaging.send_batch"
BATCH = 200  # messages per claim: one transaction, one statement per outcome
STALE_SENDING = timedelta(hours=1)
# Messages handed to a provider between two marks: a crash loses at most this many.
HAND_GROUP = 12
MESSAGES = cast(Table, Message.__table__)


@dataclass(frozen=True)
class MessageRequest:
    installation_id: int
    profile_id: int
    idempotency_key: str
    channel: Channel
    template_key: str
    marketing: bool
    topic: str = "offers"
    variables: dict[str, Any] = field(default_factory=dict)
    flow_id: int | None = None
    run_id: int | None = None
    step_index: int | None = None
    variant: str | None = None


async def queue(session: AsyncSession, request: MessageRequest, now: datetime) -> int | None:
    """Insert the message (None: this key was queued before) and send it after commit."""
    message_id = await insert_ignore(
        session,
        Message,
        {
            "installation_id": request.installation_id,
            "profile_id": request.profile_id,
            "idempotency_key": request.idempotency_key[:256],
            "channel": request.channel,
            "template_key": request.template_key,
            "marketing": request.marketing,
            "topic": request.topic,
            "variables": request.variables,
            "flow_id": request.flow_id,
            "run_id": request.run_id,
            "step_index": request.step_index,
            "variant": request.variant,
            "status": MessageStatus.QUEUED,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
        conflict_columns=["installation_id", "idempotency_key"],
    )
    if message_id is not None:
        enqueue_after_commit(session, SEND_ACTOR, message_id=message_id)
    return message_id


def links_for(ctx: AppContext) -> Links:
    return Links(ctx.settings.secret_key.get_secret_value(), ctx.settings.public_url)


async def deliver(
    ctx: AppContext, message_id: int, now: datetime | None = None, *, handed_out: bool = False
) -> None:
    """Send one message if it is queued and due."""
    await deliver_many(ctx, [message_id], now, handed_out=handed_out)


class _Taken:
    """Ids this worker moved out of QUEUED (sent, refused, failed) in its batches: their
    own jobs, arriving later, return without a statement. Only ever a shortcut: a
    message not remembered is checked in the database as usual."""

    def __init__(self, size: int = 50_000) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self.size = size

    def add(self, ids: Iterable[int]) -> None:
        for message_id in ids:
            self._ids[message_id] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, message_id: int) -> bool:
        return message_id in self._ids


TAKEN = _Taken()


async def deliver_with_due(
    ctx: AppContext,
    message_id: int,
    now: datetime | None = None,
    *,
    handed_out: bool = False,
    limit: int = BATCH,
) -> int:
    """A send job's work: its message and whatever else of the same shop is due, in one
    batch. Under load one job sends hundreds; the jobs of the others then find their
    message taken (remembered here, or one statement)."""
    if message_id in TAKEN and not handed_out:
        return 0
    return await deliver_many(ctx, [message_id], now, handed_out=handed_out, due_too=limit - 1)


async def deliver_many(
    ctx: AppContext,
    message_ids: list[int],
    now: datetime | None = None,
    *,
    handed_out: bool = False,
    due_too: int = 0,
) -> int:
    """Claim, send and record the due, queued messages among these ids (and `due_too`
    more of their shops), a batch at a time; returns how many the providers took."""
    now = now or utcnow()
    links = links_for(ctx)
    taken = 0
    for start in range(0, len(message_ids), BATCH):
        chunk = message_ids[start : start + BATCH]
        claimed, settled = await claim(ctx, links, chunk, now, handed_out, due_too=due_too)
        TAKEN.add(settled)
        if claimed:
            TAKEN.add(c.message_id for c in claimed)
            results = await _hand_over(ctx, claimed)
            taken += await _finish(ctx, claimed, results)
    return taken


async def _hand_over(ctx: AppContext, claimed: list[Claimed]) -> list[Result]:
    """Each provider gets its share of the batch (SMTP: shared connections), a group of
    `HAND_GROUP` at a time, each group marked handed over just before it goes: a worker
    dying mid-batch leaves only its current group's outcome unknown."""
    groups: dict[int, list[int]] = defaultdict(list)
    for index, message in enumerate(claimed):
        groups[id(message.provider)].append(index)
    results: list[Result] = [PermanentError("not sent")] * len(claimed)

    async def hand(indices: list[int]) -> None:
        provider = claimed[indices[0]].provider
        for start in range(0, len(indices), HAND_GROUP):
            part = indices[start : start + HAND_GROUP]
            await _mark_handed(ctx, [claimed[i].message_id for i in part])
            answers = await send_all(provider, [claimed[i].outgoing for i in part])
            for index, answer in zip(part, answers, strict=True):
                results[index] = answer

    await asyncio.gather(*(hand(indices) for indices in groups.values()))
    return results


async def _mark_handed(ctx: AppContext, message_ids: list[int]) -> None:
    async with unit_of_work(ctx.db) as session:
        await session.execute(
            update(MESSAGES).where(MESSAGES.c.id.in_(message_ids)).values(handed_at=utcnow())
        )


async def _finish(ctx: AppContext, claimed: list[Claimed], results: list[Result]) -> int:
    """Every outcome of the batch in one transaction, one statement per kind of write."""
    clock = utcnow()
    rows: list[dict[str, Any]] = []
    notes: list[Note] = []
    bounces: list[dict[str, Any]] = []
    taken = 0
    for message, result in zip(claimed, results, strict=True):
        now = max(clock, message.claimed_at)  # a caller's clock may run ahead (tests)
        row: dict[str, Any] = {"b_id": message.message_id, "b_provider": None, "b_next": None}
        if isinstance(result, str):
            taken += 1
            row |= {"b_status": MessageStatus.SENT, "b_provider": result[:256], "b_error": None}
            summary = f"Sent {message.channel.value} “{message.subject or message.template_key}”"
            notes.append(Note.of(message, "message_sent", summary, now, message.attempts))
        else:
            logger.warning("message %s not delivered: %s", message.message_id, result)
            if isinstance(result, PermanentError):
                bounces.append(
                    {
                        "installation_id": message.installation_id,
                        "channel": message.channel,
                        "address": message.recipient[:320],
                        "reason": str(result)[:1024],
                    }
                )
                reason = f"permanent: {result}"
            elif isinstance(result, UnknownOutcome):
                reason = f"outcome unknown, not retried: {result}"
            elif message.attempts < ctx.settings.messaging_send_max_attempts:
                row |= {
                    "b_status": MessageStatus.QUEUED,
                    "b_error": f"transient: {result}"[:1024],
                    "b_next": now + backoff(message.attempts),
                }
                rows.append(row)
                continue
            else:
                reason = f"gave up after {message.attempts} tries: {result}"
            row |= {"b_status": MessageStatus.FAILED, "b_error": reason[:1024]}
            notes.append(
                Note.of(
                    message,
                    "message_failed",
                    f"Message not sent: {reason}",
                    now,
                    message.attempts,
                    reason,
                )
            )
        rows.append(row)
    async with unit_of_work(ctx.db) as session:
        await session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status", type_=MESSAGES.c.status.type),
                provider_id=bindparam("b_provider", type_=MESSAGES.c.provider_id.type),
                error=bindparam("b_error", type_=MESSAGES.c.error.type),
                next_attempt_at=func.coalesce(
                    bindparam("b_next", type_=MESSAGES.c.next_attempt_at.type),
                    MESSAGES.c.next_attempt_at,
                ),
            ),
            rows,
        )
        await _mark_undeliverable(session, bounces)
        await write_notes(session, notes)
    return taken


async def _mark_undeliverable(session: AsyncSession, bounces: list[dict[str, Any]]) -> None:
    if not bounces:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(cast(Table, Undeliverable.__table__)).on_conflict_do_nothing(
            index_elements=["installation_id", "channel", "address"]
        ),
        bounces,
    )


async def give_up_stale(session: AsyncSession, now: datetime) -> int:
    """Messages left SENDING by a worker that died: those of the group it was handing
    over are never retried (at most once); those it never reached are queued again."""
    stale = (Message.status == MessageStatus.SENDING, Message.sent_at < now - STALE_SENDING)
    requeued = await session.execute(
        update(Message)
        .where(*stale, Message.handed_at.is_(None))
        .values(
            status=MessageStatus.QUEUED,
            sent_at=None,
            next_attempt_at=now,
            postponed_reason="queued again: the worker stopped before handing it over",
        )
    )
    given_up = await session.execute(
        update(Message)
        .where(*stale, Message.handed_at.is_not(None))
        .values(
            status=MessageStatus.FAILED,
            error="outcome unknown: the worker stopped while sending; not retried",
        )
    )
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in (requeued, given_up))
