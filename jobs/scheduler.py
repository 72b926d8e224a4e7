"""Periodic ticks sent from every worker process (the inbox sweep).

Ticks are cheap and idempotent: several workers ticking at once only re-check the same
rows. Delays that matter live in the database, never only in Redis.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

TICK_ACTORS = ("inbox.sweep",)


class PeriodicTicks(Middleware):
    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="crm-ticks", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, broker: dramatiq.Broker) -> None:
        while not self._stop.wait(self.interval):
            for name in TICK_ACTORS:
                try:
                    broker.get_actor(name).send()
                except Exception:  # Redis is down: the next tick tries again
                    logger.exception("could not send tick %s", name)
