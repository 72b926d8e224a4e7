"""Bulk work raises the collector's thresholds for its duration only, nesting safely."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from plugin.kit import gc_pause
from plugin.kit.gc_pause import BULK_THRESHOLDS, fewer_collections

DEFAULT = (700, 10, 10)


@pytest.fixture(autouse=True)
def alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if no import ran elsewhere in the process (the app's worker threads may run one
    while tests run)."""
    saved = gc.get_threshold()
    monkeypatch.setattr(gc_pause, "_users", 0)
    monkeypatch.setattr(gc_pause, "_saved", None)
    gc.set_threshold(*DEFAULT)
    yield
    gc.set_threshold(*saved)


def test_thresholds_are_raised_inside_and_restored_after_the_last_user_leaves() -> None:
    with fewer_collections():
        assert gc.get_threshold() == BULK_THRESHOLDS
        with fewer_collections():  # a second import in another worker thread
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == BULK_THRESHOLDS  # the first is still running
    assert gc.get_threshold() == DEFAULT


def test_thresholds_come_back_when_the_work_fails() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == DEFAULT
