"""The broker and the context actors run with (settings, database)."""

from __future__ import annotations

import logging
import queue
import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from jobs.scheduler import PeriodicTicks
from plugin.context import AppContext
from plugin.kit.after_commit import Job, set_dispatcher
from plugin.settings import Settings

logger = logging.getLogger(__name__)

_context: AppContext | None = None
_context_lock = threading.Lock()


def make_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis_url, namespace=settings.dramatiq_namespace
        )
    else:
        broker = StubBroker()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(
        PeriodicTicks(
            {
                "inbox.sweep": settings.sweep_interval_seconds,
                "segments.refresh": settings.segments_refresh_seconds,
                # ticks often; each shop is refitted once its model is older than the interval
                "predictions.refit": min(600.0, settings.predictions_refit_seconds),
                # flows read the timeline, due steps and messages are handed out
                "messaging.tick": settings.messaging_tick_seconds,
                # purge of uninstalled shops, retention of raw payloads and message bodies
                "lifecycle.retention": settings.retention_interval_seconds,
                # due courier polls, stalled-parcel alerts, unapplied carrier pushes
                "tracking.tick": settings.tracking_tick_seconds,
            }
        )
    )
    return broker


settings = Settings()
broker = make_broker(settings)
dramatiq.set_broker(broker)


def use_context(ctx: AppContext) -> None:
    """The web app shares its context with the in-process worker."""
    global _context
    _context = ctx


def context() -> AppContext:
    """The context for actors; a worker process builds its own from the environment."""
    global _context
    with _context_lock:
        if _context is None:
            _context = AppContext.create(settings)
        return _context


def send(job: Job) -> None:
    broker.get_actor(job.actor).send(**job.kwargs)


def coalesce(jobs: list[Job]) -> list[Job]:
    """Keep the first job of each coalesce key (and every job without one), in order."""
    seen: set[str] = set()
    kept = []
    for job in jobs:
        if job.coalesce_key is not None:
            if job.coalesce_key in seen:
                continue
            seen.add(job.coalesce_key)
        kept.append(job)
    return kept


class BackgroundSender:
    """Hands jobs to the broker from a thread, so a web request never waits on Redis.

    A job still in this queue when the process dies is not lost: its state is in the
    database (a pending inbox row) and the sweeper sends it again.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="crm-job-sender", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs, stop = self._drain(first)
            for job in coalesce(jobs):
                try:
                    send(job)
                except Exception:  # Redis is down: the sweeper re-drives from the database
                    logger.exception("could not enqueue %s; the sweeper will retry", job.actor)
            if stop:
                return

    def _drain(self, first: Job) -> tuple[list[Job], bool]:
        """Everything queued right now: under load, many jobs wait and coalesce."""
        jobs = [first]
        while len(jobs) < 1000:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)


_sender: BackgroundSender | None = None


def install_dispatcher() -> None:
    """Route after-commit jobs to the broker. The actors are declared first: a web process
    without an in-process worker must still know what it sends."""
    from jobs import actors  # noqa: F401

    global _sender
    if _sender is None:
        _sender = BackgroundSender()
    set_dispatcher(_sender.submit)


def uninstall_dispatcher() -> None:
    """Send what is queued, then stop (at shutdown)."""
    global _sender
    set_dispatcher(None)
    if _sender is not None:
        _sender.close()
        _sender = None


def broker_health() -> str:
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
        except Exception as exc:
            return f"error: {type(exc).__name__}"
    return "ok"
