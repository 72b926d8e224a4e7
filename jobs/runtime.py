"""The broker and the context actors run with (settings, database)."""

from __future__ import annotations

import logging
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
    broker.add_middleware(PeriodicTicks(settings.sweep_interval_seconds))
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


def install_dispatcher() -> None:
    set_dispatcher(send)


def broker_health() -> str:
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
        except Exception as exc:
            return f"error: {type(exc).__name__}"
    return "ok"
