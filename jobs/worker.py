"""Entry point of `dramatiq jobs.worker` (make worker): the broker and every actor."""

from jobs import actors
from jobs.runtime import broker, install_dispatcher

install_dispatcher()

__all__ = ["actors", "broker"]
