"""Periodic ticks sent from every worker process (the inbox sweep).

Ticks are cheap and idempotent: several workers ticking at once only re-check the same
rows. Delays that matter live in the database, never only in Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class PeriodicTicks(Middleware):
    """Sends each scheduled actor every so many seconds: `{"inbox.sweep": 30.0, …}`."""

    def __init__(self, schedule: dict[str, float]) -> None:
        self.schedule = dict(schedule)
        self.interval = min(self.schedule.values())
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
        due = {name: time.monotonic() + every for name, every in self.schedule.items()}
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            for name, at in due.items():
                if now < at:
                    continue
                due[name] = now + self.schedule[name]
                try:
                    broker.get_actor(name).send()
                except Exception:  # Redis is down: the next tick tries again
                    logger.exception("could not send tick %s", name)
