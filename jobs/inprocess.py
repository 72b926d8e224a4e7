"""Running the Dramatiq worker inside the web process (no REDIS_URL: zero set-up)."""

from __future__ import annotations

from dramatiq import Worker

from jobs import actors  # noqa: F401  (declares the actors on the broker)
from jobs.runtime import broker


class InProcessWorker:
    def __init__(self, threads: int = 2) -> None:
        self.worker = Worker(broker, worker_threads=threads, worker_timeout=100)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
