"""Fewer garbage collections during bulk work.

An import allocates millions of short-lived objects (decoded pages, rows); CPython's
default (a young-generation collection every 700 allocations, each promoting survivors
toward full collections that walk the whole heap) spent about a fifth of the importer's
CPU on collections in `bench/import.py`. Reference counting frees nearly all of them;
only reference cycles need the collector, and an import makes few (about one per
order). So within `fewer_collections()` the collector runs on its own only when a
million more objects are alive than at its last run (a real leak, not churn), and the
bulk work calls `between_batches()`, which collects every `BATCHES_PER_COLLECTION`-th
time. The usual thresholds come back when the last user leaves.

Why not every 50,000 allocations: the threshold counts allocations minus deallocations,
and an import frees the previous batch while it decodes the next, so the count seldom
reached it — and when it did, the young generation held hundreds of thousands of live
objects: 47 collections of 43 ms each for 100,000 orders, a tenth of the import's CPU.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (1_000_000, 100, 100)
BATCHES_PER_COLLECTION = 32

_lock = threading.Lock()
_startup_frozen = False
_users = 0
_saved: tuple[int, int, int] | None = None
_batches = 0


def freeze_startup() -> None:
    """Leaves what the app holds once started (modules, the schema, caches: most of the
    heap) out of every later collection. Each full collection walked all of it, 0.6 s
    with the event loop stopped; a flood of parsed GraphQL documents brought one every
    few seconds (bench/abuse.py), now 0.08 s at most."""
    global _startup_frozen
    gc.collect()
    gc.freeze()
    _startup_frozen = True


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds while the block runs (nests, thread-safe)."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
            # What lived before (the app's modules, caches) is left out of the
            # collections until the work ends: they walk only what it allocates.
            gc.freeze()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                if not _startup_frozen:  # else the app's heap stays out of collections
                    gc.unfreeze()
                gc.set_threshold(*_saved)
                _saved = None


def between_batches() -> bool:
    """Called by bulk work after each batch: every `BATCHES_PER_COLLECTION`-th call
    collects the reference cycles the batches left (a full collection, tens of ms).
    Whether it collected."""
    global _batches
    with _lock:
        if _users == 0:
            return False
        _batches += 1
        due = _batches % BATCHES_PER_COLLECTION == 0
    if due:
        gc.collect()
    return due
