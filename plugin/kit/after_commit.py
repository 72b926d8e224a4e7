"""Jobs that leave only after the transaction that asked for them commits.

Domain code calls `enqueue_after_commit(session, "inbox.fold", event_id=1)`; the unit of
work hands the buffered jobs to the dispatcher once the commit succeeded and drops them on
rollback. The dispatcher is installed by `jobs/` at start-up (domain code never imports
`jobs/`). If the dispatch itself fails, the durable state in the database (inbox rows,
schedules) is swept again later, so nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.engine import Database

logger = logging.getLogger(__name__)

_JOBS_KEY = "crm.after_commit_jobs"


@dataclass(frozen=True)
class Job:
    actor: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Jobs with the same key do the same work when they run later (e.g. "fold whatever
    # this installation has waiting"): a dispatcher that is behind may send only one.
    coalesce_key: str | None = None


Dispatcher = Callable[[Job], None]
_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    global _dispatcher
    _dispatcher = dispatcher


def enqueue_after_commit(
    session: AsyncSession, actor: str, *, coalesce_key: str | None = None, **kwargs: Any
) -> None:
    session.info.setdefault(_JOBS_KEY, []).append(Job(actor, kwargs, coalesce_key))


def pending_jobs(session: AsyncSession) -> list[Job]:
    return list(session.info.get(_JOBS_KEY, []))


def dispatch(jobs: list[Job]) -> None:
    if _dispatcher is None:
        if jobs:
            logger.debug("no job dispatcher installed; %d job(s) left to the sweeper", len(jobs))
        return
    for job in jobs:
        try:
            _dispatcher(job)
        except Exception:  # the broker is down: the sweeper re-drives from the database
            logger.exception("could not enqueue %s; the sweeper will retry", job.actor)


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[AsyncSession]:
    """One transaction: commit at the end, then dispatch its jobs; roll back on error."""
    session = db.session()
    try:
        yield session
        await session.commit()
    except BaseException:
        session.info.pop(_JOBS_KEY, None)
        await session.rollback()
        raise
    finally:
        jobs = session.info.pop(_JOBS_KEY, [])
        await session.close()
    dispatch(jobs)
