"""A validly signed payload of the wrong shape fails at once, not after retries (issue 16,
point 9): the same body fails the same way every time. Database and network errors stay
transient and are retried with back-off."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.inbox import service as inbox
from plugin.inbox.models import InboxEvent, InboxStatus
from tests.conftest import TEST_DB, new_installation
from tests.simulator import FakeShop
from tests.test_inbox import _hide_from_sweeper, _store


@pytest.fixture(autouse=True)
def no_job_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folding is driven by hand here (see tests/test_inbox.py)."""
    monkeypatch.setattr("plugin.kit.after_commit._dispatcher", None)


def _order_with(field: str, value: Any) -> bytes:
    event = FakeShop().create_order(email="t@example.com", lines=[("Mug", "M-1", "Home", 1, 3.0)])
    payload = json.loads(event[0].body)
    payload["order"][field] = value
    return json.dumps(payload).encode()


def _customer_with(field: str, value: Any) -> bytes:
    now = utcnow().isoformat()
    user = {"id": f"VXNlcjo{uuid.uuid4().hex[:6]}", "email": "c@example.com", "updatedAt": now}
    user[field] = value
    body = {"__typename": "CustomerCreated", "issuedAt": now, "user": user}
    return json.dumps(body).encode()


WRONG_SHAPES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "order lines a string": ("order_created", lambda: _order_with("lines", "x")),
    "order line a number": ("order_created", lambda: _order_with("lines", [5])),
    "order total a string": ("order_created", lambda: _order_with("total", "abc")),
    "order channel a string": ("order_created", lambda: _order_with("channel", "x")),
    "customer isActive a string": ("customer_created", lambda: _customer_with("isActive", "x")),
    "customer note an object": ("customer_created", lambda: _customer_with("note", {})),
}
if TEST_DB == "postgresql":  # SQLite stores the number as it comes (and folds it)
    WRONG_SHAPES["customer id a number"] = ("customer_created", lambda: _customer_with("id", 5))


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
async def test_a_payload_of_the_wrong_shape_fails_at_once(db: Database, case: str) -> None:
    event_type, body = WRONG_SHAPES[case]
    installation_id = await new_installation(db)
    event_id = await _store(db, installation_id, body(), event_type)
    assert event_id is not None
    await _hide_from_sweeper(db, event_id)
    folded = await inbox.fold(db, event_id)
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
    assert event is not None
    assert not folded
    assert event.status is InboxStatus.FAILED
    assert event.attempts == 1
    assert event.next_attempt_at is None, event.last_error  # not retried: waits for a human
    assert event.last_error


async def test_a_database_error_is_still_retried(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation_id = await new_installation(db)
    event_id = await _store(
        db, installation_id, _customer_with("email", "r@example.com"), "customer_created"
    )
    assert event_id is not None
    await _hide_from_sweeper(db, event_id)
    here = threading.get_ident()
    from plugin.inbox.folding import fold_payload as original

    async def locked(*args: Any, **kwargs: Any) -> list[int]:
        if threading.get_ident() == here:
            raise OperationalError("UPDATE …", {}, Exception("database is locked"))
        return await original(*args, **kwargs)

    monkeypatch.setattr("plugin.inbox.service.fold_payload", locked)
    assert not await inbox.fold(db, event_id)
    async with db.session() as session:
        event = await session.get(InboxEvent, event_id)
    assert event is not None
    assert event.status is InboxStatus.FAILED
    assert event.next_attempt_at is not None  # transient: back-off, then again
