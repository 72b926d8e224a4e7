"""The inbox: stored once, folded once, never lost (crashes, broken payloads, replays)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.inbox import service as inbox
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import pending_jobs, unit_of_work
from plugin.profiles.models import Profile
from tests.conftest import new_installation


@pytest.fixture(autouse=True)
def no_job_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests drive folding by hand: jobs a commit would send are only inspected, so
    the app another test may have started (with its in-process worker) never races them."""
    monkeypatch.setattr("plugin.kit.after_commit._dispatcher", None)


def _customer_created(email: str) -> bytes:
    now = utcnow().isoformat()
    return json.dumps(
        {
            "__typename": "CustomerCreated",
            "issuedAt": now,
            "version": "3.23.28",
            "user": {"id": f"VXNlcjo{uuid.uuid4().hex[:6]}", "email": email, "updatedAt": now},
        }
    ).encode()


async def _store(db: Database, installation_id: int, body: bytes, event: str) -> int | None:
    async with unit_of_work(db) as session:
        stored = await inbox.store(
            session,
            installation_id=installation_id,
            event_type=event,
            body=body,
            issued_at=utcnow(),
            saleor_version="3.23.28",
        )
        expected = (
            []
            if stored.duplicate
            else [{"event_id": stored.id, "installation_id": installation_id}]
        )
        assert [j.kwargs for j in pending_jobs(session)] == expected
    return stored.id


async def _hide_from_sweeper(db: Database, event_id: int) -> None:
    """The sweeper of an app another test started takes only pending rows older than its
    minimum age: a receipt time in the future keeps it off this row."""
    async with unit_of_work(db) as session:
        await session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(received_at=utcnow() + timedelta(hours=1))
        )


async def test_redelivery_is_stored_once(db: Database) -> None:
    installation_id = await new_installation(db)
    body = _customer_created("once@example.com")
    first = await _store(db, installation_id, body, "customer_created")
    second = await _store(db, installation_id, body, "customer_created")
    assert first is not None
    assert second is None
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(InboxEvent).where(InboxEvent.installation_id == installation_id)
            )
        )
    assert len(rows) == 1


async def test_crash_between_store_and_fold_loses_nothing(db: Database) -> None:
    """The fold job never ran (worker crash, Redis outage): the sweeper finds the row."""
    installation_id = await new_installation(db)
    event_id = await _store(
        db, installation_id, _customer_created("crash@example.com"), "customer_created"
    )
    assert event_id is not None
    async with db.session() as session:
        due = await inbox.due_for_folding(
            session, now=utcnow() + timedelta(minutes=5), min_age=timedelta(seconds=20)
        )
    assert event_id in [event.id for event in due]
    assert await inbox.fold(db, event_id)
    assert await inbox.fold(db, event_id)  # a second delivery of the job is a no-op
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
        assert event is not None
        assert event.status is InboxStatus.DONE
        assert event.attempts == 1
        profiles = list(
            await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
        )
    assert [p.email for p in profiles] == ["crash@example.com"]


async def test_unfoldable_payload_stays_failed_and_replayable(db: Database) -> None:
    installation_id = await new_installation(db)
    body = json.dumps(
        {"__typename": "OrderCreated", "issuedAt": utcnow().isoformat(), "order": None}
    ).encode()
    event_id = await _store(db, installation_id, body, "order_created")
    assert event_id is not None
    await _hide_from_sweeper(db, event_id)
    assert not await inbox.fold(db, event_id)
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
        assert event is not None
        assert event.status is InboxStatus.FAILED
        assert "order" in (event.last_error or "")
        assert event.next_attempt_at is None  # permanent: waits for a human
        assert event.body == body.decode()
    async with unit_of_work(db) as session:
        replayed = await inbox.replay(session, installation_id=installation_id)
        assert replayed == [event_id]
        assert [j.kwargs for j in pending_jobs(session)] == [{"event_id": event_id}]
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
        assert event is not None
        assert event.status is InboxStatus.PENDING


async def test_transient_failure_is_retried_with_backoff(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation_id = await new_installation(db)
    event_id = await _store(
        db, installation_id, _customer_created("retry@example.com"), "customer_created"
    )
    assert event_id is not None
    await _hide_from_sweeper(db, event_id)

    calls = {"n": 0}
    here = threading.get_ident()
    from plugin.inbox.folding import fold_payload as original

    async def flaky(*args: object, **kwargs: object) -> list[int]:
        if threading.get_ident() == here:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("database went away")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("plugin.inbox.service.fold_payload", flaky)
    assert not await inbox.fold(db, event_id)
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
        assert event is not None
        assert event.status is InboxStatus.FAILED
        assert event.next_attempt_at is not None
        retry_at = event.next_attempt_at
        due_now = await inbox.due_for_folding(session, now=utcnow(), min_age=timedelta(0))
        due_later = await inbox.due_for_folding(
            session, now=retry_at + timedelta(seconds=1), min_age=timedelta(0)
        )
    assert event_id not in [event.id for event in due_now]
    assert event_id in [event.id for event in due_later]
    assert await inbox.fold(db, event_id)
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
        assert event is not None
        assert event.status is InboxStatus.DONE
        assert event.last_error is None
