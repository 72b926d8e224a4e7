"""Fewer garbage collections during bulk work.

An import allocates millions of short-lived objects (decoded pages, rows); CPython's
default (a young-generation collection every 700 allocations, each promoting survivors
toward full collections that walk the whole heap) spent about a fifth of the importer's
CPU on collections in `bench/import.py`. Within `fewer_collections()` the young generation
is collected every 50,000 allocations instead; reference counting still frees nearly
everything at once, and the usual thresholds come back when the last user leaves.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (50_000, 20, 100)

_lock = threading.Lock()
_users = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds while the block runs (nests, thread-safe)."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
