"""Bulk work raises the collector's thresholds for its duration only, nesting safely, and
collects the cycles it leaves every few batches."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from plugin.kit import gc_pause
from plugin.kit.gc_pause import (
    BATCHES_PER_COLLECTION,
    BULK_THRESHOLDS,
    between_batches,
    fewer_collections,
)

DEFAULT = (700, 10, 10)


@pytest.fixture(autouse=True)
def alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if no import ran elsewhere in the process (the app's worker threads may run one
    while tests run)."""
    saved = gc.get_threshold()
    monkeypatch.setattr(gc_pause, "_users", 0)
    monkeypatch.setattr(gc_pause, "_saved", None)
    monkeypatch.setattr(gc_pause, "_batches", 0)
    gc.set_threshold(*DEFAULT)
    yield
    gc.set_threshold(*saved)


def test_thresholds_are_raised_inside_and_restored_after_the_last_user_leaves() -> None:
    with fewer_collections():
        assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what lived before is left out of collections
        with fewer_collections():  # a second import in another worker thread
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == BULK_THRESHOLDS  # the first is still running
    assert gc.get_threshold() == DEFAULT


def test_thresholds_come_back_when_the_work_fails() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == DEFAULT


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_cycles_batches_leave_are_collected_every_few_batches() -> None:
    collected = []
    with fewer_collections():
        for batch in range(1, 2 * BATCHES_PER_COLLECTION + 1):
            Cycle()  # garbage only the collector can free
            if between_batches():
                collected.append(batch)
                assert not any(isinstance(o, Cycle) for o in gc.get_objects())
    assert collected == [BATCHES_PER_COLLECTION, 2 * BATCHES_PER_COLLECTION]
    # Outside bulk work the usual collector runs: nothing to do here.
    assert between_batches() is False
