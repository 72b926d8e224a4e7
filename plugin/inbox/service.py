"""Storing verified events (before answering Saleor) and folding them (after the commit).

Folding retries with backoff while the error looks transient (the database, the network);
a payload the domain cannot fold (`PayloadError`, or values of the wrong type: see
`is_payload_problem`) is marked failed at once. Failed events keep their error and can be
replayed; the sweeper re-drives events that were stored but never folded (a crash, a
Redis outage between commit and enqueue).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.db.upsert import insert_ignore, insert_ignore_core
from plugin.inbox.folding import apply_payload, fold_payload, is_payload_problem, refresh_derived
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import Job, dispatch, enqueue_after_commit, unit_of_work
from plugin.ops.logging import bind
from plugin.ops.metrics import FOLD_FAILURES, FOLD_LATENCY
from plugin.profiles.models import Profile

logger = logging.getLogger(__name__)

FOLD_ACTOR = "inbox.fold"


@dataclass(frozen=True)
class StoredEvent:
    id: int | None  # None: a duplicate of an event already stored
    duplicate: bool


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def store_now(
    db: Database,
    *,
    installation_id: int,
    event_type: str,
    body: bytes,
    issued_at: datetime | None,
    saleor_version: str | None,
) -> StoredEvent:
    """`store` in a transaction of its own, then the fold job. On PostgreSQL the single
    INSERT runs in autocommit: one round trip instead of three on the webhook path."""
    if db.dialect != "postgresql":
        async with unit_of_work(db) as session:
            return await store(
                session,
                installation_id=installation_id,
                event_type=event_type,
                body=body,
                issued_at=issued_at,
                saleor_version=saleor_version,
            )
    async with db.autocommit_engine.connect() as connection:
        new_id = await insert_ignore_core(
            connection,
            InboxEvent,
            _row(installation_id, event_type, body, issued_at, saleor_version),
            conflict_columns=DEDUP_COLUMNS,
        )
    if new_id is None:
        return StoredEvent(None, duplicate=True)
    dispatch([fold_job(new_id, installation_id)])
    return StoredEvent(new_id, duplicate=False)


DEDUP_COLUMNS = ["installation_id", "event_type", "body_sha256"]


def _row(
    installation_id: int,
    event_type: str,
    body: bytes,
    issued_at: datetime | None,
    saleor_version: str | None,
) -> dict[str, object]:
    return {
        "installation_id": installation_id,
        "event_type": event_type,
        "body_sha256": body_hash(body),
        "body": body.decode("utf-8"),
        "issued_at": issued_at,
        "saleor_version": saleor_version,
        "received_at": utcnow(),
        "status": InboxStatus.PENDING,
        "attempts": 0,
    }


async def store(
    session: AsyncSession,
    *,
    installation_id: int,
    event_type: str,
    body: bytes,
    issued_at: datetime | None,
    saleor_version: str | None,
) -> StoredEvent:
    """Insert the raw event once; a redelivery (same bytes) is recognised and not re-folded."""
    new_id = await insert_ignore(
        session,
        InboxEvent,
        _row(installation_id, event_type, body, issued_at, saleor_version),
        conflict_columns=DEDUP_COLUMNS,
    )
    if new_id is None:
        return StoredEvent(None, duplicate=True)
    job = fold_job(new_id, installation_id)
    enqueue_after_commit(session, job.actor, coalesce_key=job.coalesce_key, **job.kwargs)
    return StoredEvent(new_id, duplicate=False)


async def mark_folded(session: AsyncSession, event_id: int) -> None:
    """The event was applied where it was received (APP_DELETED): the fold job leaves it
    be. Folded again later — after a re-install, say — it would undo what came since."""
    await session.execute(
        update(InboxEvent)
        .where(InboxEvent.id == event_id, InboxEvent.status != InboxStatus.DONE)
        .values(
            status=InboxStatus.DONE,
            attempts=InboxEvent.attempts + 1,
            folded_at=utcnow(),
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def fold_job(event_id: int, installation_id: int) -> Job:
    """Fold this event, and whatever else of its installation is waiting, in one batch."""
    return Job(
        FOLD_ACTOR,
        {"event_id": event_id, "installation_id": installation_id},
        coalesce_key=f"fold:{installation_id}",
    )


def retry_delay(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s … capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


async def fold(db: Database, event_id: int, *, max_attempts: int = 8) -> bool:
    """Fold one stored event. True when it is folded (now or before)."""
    started = time.perf_counter()
    try:
        async with unit_of_work(db) as session:
            event = await session.get(InboxEvent, event_id)
            if event is None or event.status is InboxStatus.DONE:
                return event is not None
            bind(installation_id=event.installation_id, event=event.event_type, inbox_id=event.id)
            await lock_installation(session, event.installation_id)
            # Re-read under the lock: a concurrent fold of the same row may have finished.
            await session.refresh(event)
            status: InboxStatus = event.status
            if status is InboxStatus.DONE:
                return True
            payload = json.loads(event.body)
            await fold_payload(session, event.installation_id, event.event_type, payload)
            event.status = InboxStatus.DONE
            event.attempts += 1
            event.folded_at = utcnow()
            event.last_error = None
            event.next_attempt_at = None
            received_at, event_type = event.received_at, event.event_type
    except Exception as exc:
        await _record_failure(db, event_id, exc, max_attempts)
        return False
    FOLD_LATENCY.labels(event=event_type).observe(
        max((utcnow() - received_at).total_seconds(), time.perf_counter() - started)
    )
    return True


BATCH_SIZE = 200


async def fold_pending(
    db: Database, installation_id: int, *, limit: int = BATCH_SIZE, max_attempts: int = 8
) -> int:
    """Fold an installation's waiting events in one transaction; returns how many.

    Under load many events wait at once: one lock, one commit and one recompute per
    touched profile serve them all. If any event of the batch fails, the batch is rolled
    back and its events are folded one by one, so each failure is recorded on its own.
    """
    started = time.perf_counter()
    event_ids: list[int] = []
    try:
        async with unit_of_work(db) as session:
            await lock_installation(session, installation_id)
            events = list(
                await session.scalars(
                    select(InboxEvent)
                    .where(
                        InboxEvent.installation_id == installation_id,
                        InboxEvent.status == InboxStatus.PENDING,
                    )
                    .order_by(InboxEvent.id)
                    .limit(limit)
                )
            )
            event_ids = [event.id for event in events]
            touched: list[Profile] = []
            folded_at = utcnow()
            for event in events:
                bind(installation_id=installation_id, event=event.event_type, inbox_id=event.id)
                payload = json.loads(event.body)
                touched += await apply_payload(session, installation_id, event.event_type, payload)
            await refresh_derived(session, installation_id, touched)
            # One statement marks the whole batch folded.
            await session.execute(
                update(InboxEvent)
                .where(InboxEvent.id.in_(event_ids))
                .values(
                    status=InboxStatus.DONE,
                    attempts=InboxEvent.attempts + 1,
                    folded_at=folded_at,
                    last_error=None,
                    next_attempt_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            timings = [(event.event_type, event.received_at) for event in events]
    except Exception:
        logger.info("batch of %d events failed; folding them one by one", len(event_ids))
        for event_id in event_ids:
            await fold(db, event_id, max_attempts=max_attempts)
        return len(event_ids)
    elapsed = time.perf_counter() - started
    now = utcnow()
    for event_type, received_at in timings:
        FOLD_LATENCY.labels(event=event_type).observe(
            max((now - received_at).total_seconds(), elapsed)
        )
    return len(timings)


async def _record_failure(db: Database, event_id: int, exc: Exception, max_attempts: int) -> None:
    permanent = is_payload_problem(exc)
    if permanent:
        logger.warning("event %s cannot be folded: %s", event_id, exc)
    else:
        logger.exception("folding event %s failed; it will be retried", event_id)
    try:
        async with unit_of_work(db) as session:
            event = await session.get(InboxEvent, event_id)
            if event is None:
                return
            event.attempts += 1
            event.status = InboxStatus.FAILED
            event.last_error = f"{type(exc).__name__}: {exc}"[:4000]
            give_up = permanent or event.attempts >= max_attempts
            event.next_attempt_at = None if give_up else utcnow() + retry_delay(event.attempts)
            FOLD_FAILURES.labels(event=event.event_type, permanent=str(give_up).lower()).inc()
    except Exception:  # the database is down: the sweeper finds the row still pending
        logger.exception("could not record the failure of event %s", event_id)


@dataclass(frozen=True)
class DueEvent:
    id: int
    installation_id: int
    failed: bool


async def due_for_folding(
    session: AsyncSession, *, now: datetime, min_age: timedelta, limit: int = 500
) -> list[DueEvent]:
    """Events stored but not folded in time, and failed events whose retry time has come."""
    rows = await session.execute(
        select(InboxEvent.id, InboxEvent.installation_id, InboxEvent.status)
        .where(
            or_(
                (InboxEvent.status == InboxStatus.PENDING)
                & (InboxEvent.received_at <= now - min_age),
                (InboxEvent.status == InboxStatus.FAILED) & (InboxEvent.next_attempt_at <= now),
            )
        )
        .order_by(InboxEvent.id)
        .limit(limit)
    )
    return [
        DueEvent(row.id, row.installation_id, InboxStatus(row.status) is InboxStatus.FAILED)
        for row in rows
    ]


async def replay(
    session: AsyncSession, *, installation_id: int | None = None, event_ids: list[int] | None = None
) -> list[int]:
    """Put failed events back in line (e.g. after a fix was deployed)."""
    query = select(InboxEvent.id).where(InboxEvent.status == InboxStatus.FAILED)
    if installation_id is not None:
        query = query.where(InboxEvent.installation_id == installation_id)
    if event_ids is not None:
        query = query.where(InboxEvent.id.in_(event_ids))
    ids = list(await session.scalars(query))
    if ids:
        await session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(ids))
            .values(status=InboxStatus.PENDING, next_attempt_at=None, attempts=0)
        )
    for event_id in ids:
        enqueue_after_commit(session, FOLD_ACTOR, event_id=event_id)
    return ids


async def backlog(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(InboxEvent.status, func.count())
        .where(InboxEvent.status != InboxStatus.DONE)
        .group_by(InboxEvent.status)
    )
    counts = {s.value: 0 for s in InboxStatus if s is not InboxStatus.DONE}
    for status, count in rows.all():
        counts[InboxStatus(status).value] = count
    return counts
