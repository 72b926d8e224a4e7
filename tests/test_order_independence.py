"""Any order of delivery, with any duplicates, gives the same CRM state (hypothesis).

Saleor retries failed deliveries and sends webhooks concurrently, so a shop's events reach
the app shuffled and repeated. Each example folds a shuffled sequence (with repeats) into a
fresh installation and compares everything the CRM holds with the in-order result.
Repeats take both roads: through the inbox (the same bytes again: deduplicated) and
straight into the domain fold (a second folding of the same state must change nothing).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.inbox import service as inbox
from plugin.inbox.folding import fold_payload
from plugin.kit import after_commit
from plugin.kit.after_commit import unit_of_work
from tests.conftest import new_installation
from tests.profile_view import installation_view
from tests.simulator import Event, FakeShop
from tests.stories import BOB, MIA, two_customers

DEFAULT_EXAMPLES = 12
EXAMPLES = int(os.environ.get("CRM_PROPERTY_EXAMPLES", DEFAULT_EXAMPLES))
EVENTS = two_customers(FakeShop()).events
_expected: dict[str, Any] = {}


async def _fold_all(db: Database, sequence: list[tuple[int, bool]]) -> int:
    installation_id = await new_installation(db)
    for index, bypass_inbox in sequence:
        event: Event = EVENTS[index]
        if bypass_inbox:
            async with unit_of_work(db) as session:
                await lock_installation(session, installation_id)
                await fold_payload(
                    session, installation_id, event.event_type, json.loads(event.body)
                )
            continue
        async with unit_of_work(db) as session:
            stored = await inbox.store(
                session,
                installation_id=installation_id,
                event_type=event.event_type,
                body=event.body,
                issued_at=event.issued_at,
                saleor_version="3.23.28",
            )
        if stored.id is not None:
            assert await inbox.fold(db, stored.id)
    return installation_id


async def _in_order_view(db: Database) -> Any:
    if "view" not in _expected:
        installation_id = await _fold_all(db, [(i, False) for i in range(len(EVENTS))])
        _expected["view"] = await installation_view(db, installation_id)
    return _expected["view"]


def difference(expected: dict[Any, Any], got: dict[Any, Any]) -> str:
    """Which part of which profile differs, readable in a failure report."""
    lines = []
    for key in expected.keys() | got.keys():
        if key not in got or key not in expected:
            lines.append(
                f"only on one side: {sorted(key) if key != 'anonymous checkouts' else key}"
            )
        elif expected[key] != got[key]:
            if not isinstance(expected[key], dict):
                lines.append(f"{key}: expected {expected[key]} got {got[key]}")
                continue
            for part, value in expected[key].items():
                if value != got[key][part]:
                    theirs = got[key][part]
                    extra = [x for x in theirs if x not in value]
                    missing = [x for x in value if x not in theirs]
                    lines.append(f"{part}: missing {missing} unexpected {extra}")
    return "\n".join(lines)


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[int, bool]]:
    """A permutation of every event, plus some repeats inserted anywhere."""
    order = draw(st.permutations(range(len(EVENTS))))
    sequence = [(i, False) for i in order]
    repeats = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(EVENTS) - 1),
                st.integers(0, len(EVENTS)),
                st.booleans(),
            ),
            max_size=6,
        )
    )
    for index, position, bypass in repeats:
        sequence.insert(position, (index, bypass))
    return sequence


async def test_in_order_story_gives_two_customers(db: Database) -> None:
    view = await _in_order_view(db)
    emails = sorted(
        value
        for identities in view
        if identities != "anonymous checkouts"
        for kind, value, _ in identities
        if kind == "email"
    )
    assert emails == sorted([MIA.lower(), BOB])
    assert view["anonymous checkouts"] == []


@settings(
    # CI runs a fixed, quick set; CRM_PROPERTY_EXAMPLES=500 explores fresh cases locally.
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES == DEFAULT_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=deliveries())
async def test_any_delivery_order_gives_the_same_crm(
    db: Database, sequence: list[tuple[int, bool]]
) -> None:
    expected = await _in_order_view(db)
    installation_id = await _fold_all(db, sequence)
    view = await installation_view(db, installation_id)
    assert view == expected, difference(expected, view)


async def test_reversed_order_with_every_event_twice(db: Database) -> None:
    """The worst case, spelled out: newest first, each event repeated past the inbox."""
    sequence = [(i, bypass) for i in reversed(range(len(EVENTS))) for bypass in (False, True)]
    expected = await _in_order_view(db)
    installation_id = await _fold_all(db, sequence)
    view = await installation_view(db, installation_id)
    assert view == expected, difference(expected, view)


@settings(
    max_examples=max(EXAMPLES // 2, 4),
    deadline=None,
    derandomize=EXAMPLES == DEFAULT_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=st.permutations(range(len(EVENTS))), batch_size=st.integers(1, len(EVENTS)))
async def test_batches_of_any_size_give_the_same_crm(
    db: Database, order: list[int], batch_size: int
) -> None:
    """Under load the worker folds many waiting events in one transaction, recomputing
    each touched profile once at the end; the result must not depend on the batching.
    (A running app's sweeper may fold some of them meanwhile: that must not matter either.)"""
    expected = await _in_order_view(db)
    previous = after_commit._dispatcher
    after_commit.set_dispatcher(None)  # no fold jobs: this test folds by itself
    try:
        installation_id = await new_installation(db)
        for index in order:
            event = EVENTS[index]
            async with unit_of_work(db) as session:
                await inbox.store(
                    session,
                    installation_id=installation_id,
                    event_type=event.event_type,
                    body=event.body,
                    issued_at=event.issued_at,
                    saleor_version="3.23.28",
                )
    finally:
        after_commit.set_dispatcher(previous)
    folded = 0
    while batch := await inbox.fold_pending(db, installation_id, limit=batch_size):
        folded += batch
    assert 0 < folded <= len(EVENTS)
    view = await installation_view(db, installation_id)
    assert view == expected, difference(expected, view)
