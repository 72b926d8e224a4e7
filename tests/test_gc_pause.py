"""Bulk work raises the collector's thresholds for its duration only, nesting safely."""

from __future__ import annotations

import gc

from plugin.kit.gc_pause import BULK_THRESHOLDS, fewer_collections


def test_thresholds_are_raised_inside_and_restored_after_the_last_user_leaves() -> None:
    before = gc.get_threshold()
    assert before != BULK_THRESHOLDS
    with fewer_collections():
        assert gc.get_threshold() == BULK_THRESHOLDS
        with fewer_collections():  # a second import in another worker thread
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == BULK_THRESHOLDS  # the first is still running
    assert gc.get_threshold() == before


def test_thresholds_come_back_when_the_work_fails() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("the import failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
