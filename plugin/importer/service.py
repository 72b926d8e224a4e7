"""Starting, resuming and running an import of a shop's history.

A run is claimed by one worker at a time (a heartbeat older than `STALE_AFTER` lets
another take over a dead worker's run). Pages are read ahead of the fold (a bounded
queue, within the request budget); the pages read by the time the fold is free are folded
together, set-based (plugin/importer/fold.py), in one transaction under the installation's
fold lock — webhooks folding meanwhile wait their turn, and both keep the newest state by
Saleor's timestamps — and the last page's cursor is committed with their rows, so a
restart resumes at the first page not folded. When a batch fails, its objects are folded
one by one through the webhook code so the failure is recorded on the object that
caused it. The folded customers' figures are recomputed once each when the run ends
(plugin/importer/figures.py), two slices at a time, before the whole-shop refresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import desc, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import rollups
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.importer.bulk import analyze, relaxed_commit
from plugin.importer.figures import settle_profiles, stale_profiles
from plugin.importer.fold import (
    FOLDED_MODELS,
    GROWN_MODELS,
    LOOKUP_COLUMNS,
    fold_nodes,
    fold_nodes_one_by_one,
    object_id,
)
from plugin.importer.items import Item, prepare
from plugin.importer.models import ImportFailure, ImportRun, ImportStatus
from plugin.importer.progress import Progress, progress_of, resource_state
from plugin.importer.source import RESOURCES, Page, Resource, SaleorPages
from plugin.kit.after_commit import enqueue_after_commit, unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.kit.gc_pause import between_batches, fewer_collections
from plugin.saleor.client import SaleorError
from plugin.saleor.models import Installation, InstallationStatus
from plugin.segments.membership import refresh_installation
from plugin.settings import Settings

logger = logging.getLogger(__name__)

IMPORT_ACTOR = "import.run"
STALE_AFTER = timedelta(minutes=2)
READ_AHEAD = 24  # pages read ahead of the fold
BATCH_OBJECTS = 2000  # at most this many objects folded in one transaction
PREPARE_SLICE = 10  # nodes read ahead between two chances for the fold to go on
SETTLE_PROFILES = 5000  # stale figures recomputed per transaction at the end of a run
SETTLE_AT_ONCE = 2  # such transactions at once (PostgreSQL)
FAILURES_SHOWN = 100
UNFINISHED = (ImportStatus.QUEUED, ImportStatus.RUNNING)
ProgressCallback = Callable[[Progress], None]


class ImportUnavailable(Exception):
    """The import cannot start (unknown or uninstalled shop); the message says why."""


async def latest_run(session: AsyncSession, installation_id: int) -> ImportRun | None:
    return await session.scalar(
        select(ImportRun)
        .where(ImportRun.installation_id == installation_id)
        .order_by(desc(ImportRun.id))
        .limit(1)
    )


async def start_import(
    session: AsyncSession, installation_id: int, *, requested_by: str, enqueue: bool = True
) -> ImportRun:
    """Queue an import (the job runs after the commit). A run still going is returned as
    is; a failed or cancelled one resumes from its cursors; after a finished one a new run
    starts (it brings what changed since, and folds nothing twice)."""
    installation = await session.get(Installation, installation_id)
    if installation is None:
        raise ImportUnavailable(f"no installation {installation_id}")
    if installation.status is not InstallationStatus.ACTIVE:
        raise ImportUnavailable(f"installation {installation_id} is uninstalled")
    run = await latest_run(session, installation_id)
    if run is None or run.status is ImportStatus.DONE:
        run = ImportRun(
            installation_id=installation_id,
            requested_by=requested_by[:256],
            resources={name: {} for name in RESOURCES},
            status=ImportStatus.QUEUED,
            processed=0,
            failed=0,
            busy_seconds=0.0,
            created_at=utcnow(),
        )
        session.add(run)
    elif run.status in (ImportStatus.FAILED, ImportStatus.CANCELLED):
        run.status, run.finished_at, run.last_error = ImportStatus.QUEUED, None, None
    await session.flush()
    if enqueue:
        enqueue_after_commit(session, IMPORT_ACTOR, run_id=run.id)
    return run


async def import_running(session: AsyncSession, installation_id: int, now: datetime) -> bool:
    """Is a worker folding this shop's history right now (a live heartbeat)? The scheduled
    segment refresh then leaves the shop alone: it would compute segments from half the
    history, and the run's end refreshes every segment anyway."""
    found = await session.scalar(
        select(ImportRun.id)
        .where(
            ImportRun.installation_id == installation_id,
            ImportRun.status == ImportStatus.RUNNING,
            ImportRun.heartbeat_at > now - STALE_AFTER,
        )
        .limit(1)
    )
    return found is not None


async def cancel_runs(session: AsyncSession, installation_id: int, reason: str) -> int:
    """Stop the shop's unfinished runs (uninstall); the worker notices at its next page."""
    result = await session.execute(
        update(ImportRun)
        .where(ImportRun.installation_id == installation_id, ImportRun.status.in_(UNFINISHED))
        .values(status=ImportStatus.CANCELLED, last_error=reason, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def claim(db: Database, run_id: int, now: datetime) -> bool:
    """Take the run for this worker: queued, or running with a dead worker's heartbeat."""
    async with unit_of_work(db) as session:
        result = await session.execute(
            update(ImportRun)
            .where(
                ImportRun.id == run_id,
                or_(
                    ImportRun.status == ImportStatus.QUEUED,
                    (ImportRun.status == ImportStatus.RUNNING)
                    & (ImportRun.heartbeat_at < now - STALE_AFTER),
                ),
            )
            .values(status=ImportStatus.RUNNING, heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        claimed = bool(getattr(result, "rowcount", 0))
        if claimed:
            run = await session.get(ImportRun, run_id)
            if run is not None and run.started_at is None:
                run.started_at = now
        return claimed


class Importer:
    """Runs one claimed import; `max_seconds` bounds one job (it re-queues itself)."""

    def __init__(
        self,
        db: Database,
        http: httpx.AsyncClient,
        box: SecretBox,
        settings: Settings,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.db = db
        self.http = http
        self.box = box
        self.settings = settings
        self.batches: dict[str, int] = {}  # batches folded per list in this job
        # Profiles whose figures a committed batch of this job left stale (marked on file
        # until settled): a later batch need not mark them again.
        self.marked_stale: dict[int, set[int]] = {}
        self.on_progress = on_progress
        self.figures_seconds = 0.0  # the end-of-run recompute of the customers' figures

    async def run(self, run_id: int, *, max_seconds: float | None = None) -> ImportStatus:
        if not await claim(self.db, run_id, utcnow()):
            async with self.db.session() as session:
                run = await session.get(ImportRun, run_id)
                return run.status if run is not None else ImportStatus.CANCELLED
        try:
            with fewer_collections():
                return await self._run(run_id, max_seconds)
        except SaleorError as exc:
            error = f"{exc.code}: {exc.message}"
        except Exception as exc:
            logger.exception("import run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}"
        try:  # what was folded counts at once, not only when the run is resumed
            await self._settle_figures(run_id)
        except Exception:
            logger.exception("import run %s: figures left for the resumed run", run_id)
        await self._finish(run_id, ImportStatus.FAILED, error)
        return ImportStatus.FAILED

    async def _run(self, run_id: int, max_seconds: float | None) -> ImportStatus:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        async with self.db.session() as session:
            run = await session.get(ImportRun, run_id)
            installation = await session.get(Installation, run.installation_id) if run else None
            if run is None or installation is None:
                return ImportStatus.CANCELLED
            pages = SaleorPages(
                self.http,
                installation.saleor_api_url,
                self.box.decrypt(installation.token_encrypted),
                requests_per_second=self.settings.import_requests_per_second,
            )
            states = {name: resource_state(run, name) for name in RESOURCES}
        for name, resource in RESOURCES.items():
            if states[name].get("finished"):
                continue
            status = await self._resource(run_id, pages, resource, states[name], deadline)
            if status is not ImportStatus.DONE:
                return status
        if not await self._settle_figures(run_id):
            return ImportStatus.CANCELLED
        await self._complete(run_id)
        return ImportStatus.DONE

    async def _resource(
        self,
        run_id: int,
        pages: SaleorPages,
        resource: Resource,
        state: dict[str, Any],
        deadline: float | None,
    ) -> ImportStatus:
        """Pages are read ahead (a bounded queue) while earlier ones are folded; the pages
        already read when the folder is free are folded together in one transaction,
        whose cursor is the last one's — a restart resumes right after it."""
        size = max(1, min(self.settings.import_page_size, 100))
        queue: asyncio.Queue[Page | BaseException] = asyncio.Queue(maxsize=READ_AHEAD)
        reader = asyncio.ensure_future(
            self._read(pages, resource, state.get("cursor"), size, queue)
        )
        try:
            # The rate (and so the ETA) counts waiting for Saleor as well as folding: with
            # a slow or rate-limited shop, reading is most of the time.
            since = time.perf_counter()
            loop = asyncio.get_running_loop()
            while True:
                batch = await self._next_batch(queue)
                status = await self._fold_page(run_id, resource, batch, since)
                since = time.perf_counter()
                # Freeing a batch's thousands of objects takes a while: it is done when
                # the loop next waits, on the database, not before the next batch starts.
                has_next = batch.has_next
                loop.call_soon([batch].clear)
                del batch
                between_batches()
                if status is not ImportStatus.RUNNING or not has_next:
                    return ImportStatus.DONE if status is ImportStatus.RUNNING else status
                if deadline is not None and time.monotonic() > deadline:
                    await self._finish(run_id, ImportStatus.QUEUED, None)
                    return ImportStatus.QUEUED
        finally:
            reader.cancel()

    @staticmethod
    async def _read(
        pages: SaleorPages,
        resource: Resource,
        cursor: str | None,
        size: int,
        queue: asyncio.Queue[Page | BaseException],
    ) -> None:
        while True:
            try:
                page = await pages.read(resource, cursor, size)
            except Exception as exc:  # handed to the folder, which ends the run with it
                await queue.put(exc)
                return
            # Read ahead of its fold, while the folder waits on the database.
            now = utcnow()
            prepared: list[Item | None] = []
            for node in page.nodes:
                prepared.append(prepare(resource.name, node, now, pages.saleor_api_url))
                if len(prepared) % PREPARE_SLICE == 0:
                    # Let a fold whose database answer came in go on first: it is the
                    # critical path, this is work ahead of it.
                    await asyncio.sleep(0)
            await queue.put(dataclasses.replace(page, prepared=prepared))
            if not page.has_next:
                return
            cursor = page.end_cursor

    @staticmethod
    async def _next_batch(queue: asyncio.Queue[Page | BaseException]) -> Page:
        """The next page, with those already read behind it (up to `BATCH_OBJECTS`)."""
        read: list[Page] = []
        while True:
            item = await queue.get() if not read else queue.get_nowait()
            if isinstance(item, BaseException):
                if read:  # fold what was read first; the error comes with the next batch
                    queue.put_nowait(item)
                    break
                raise item
            read.append(item)
            if not item.has_next or sum(len(p.nodes) for p in read) >= BATCH_OBJECTS:
                break
            if queue.empty():
                break
        last = read[-1]
        return Page(
            nodes=[node for page in read for node in page.nodes],
            end_cursor=last.end_cursor,
            has_next=last.has_next,
            total=last.total,
            prepared=[
                item for page in read for item in (page.prepared or [None] * len(page.nodes))
            ],
            partial=tuple(problem for page in read for problem in page.partial),
            unreadable=tuple(problem for page in read for problem in page.unreadable),
        )

    async def _fold_page(
        self, run_id: int, resource: Resource, page: Page, started: float
    ) -> ImportStatus:
        """Fold one batch; `started` is when waiting for it began."""
        failures: list[tuple[str, str]] = []
        try:
            async with unit_of_work(self.db) as session:
                run = await self._locked_run(session, run_id)
                if run is None:
                    return ImportStatus.CANCELLED
                await relaxed_commit(session)
                marked = self.marked_stale.setdefault(run_id, set())
                touched = await fold_nodes(
                    session,
                    run.installation_id,
                    resource.name,
                    page.nodes,
                    utcnow(),
                    defer_figures=True,
                    prepared=page.prepared,
                    already_stale=marked,
                )
                batches = self.batches[resource.name] = self.batches.get(resource.name, 0) + 1
                if batches & (batches - 1) == 0 and batches.bit_length() % 2 == 1:
                    # Each list grows its own tables geometrically: their statistics after
                    # its batch 1, 4, 16, 64, … (never more than 4× off). A plan made while
                    # orders were still empty (during the customers' batches) scans the
                    # whole table on every later batch: 4× slower at 200,000 orders.
                    await analyze(session, GROWN_MODELS[resource.name], LOOKUP_COLUMNS)
                progress = self._advance(
                    session, run, resource, page, time.perf_counter() - started, []
                )
            marked.update(touched)  # committed
        except Exception:
            logger.info("an import page failed; folding its objects one by one")
            failures = await self._fold_one_by_one(run_id, resource, page)
            async with unit_of_work(self.db) as session:
                run = await self._locked_run(session, run_id)
                if run is None:
                    return ImportStatus.CANCELLED
                progress = self._advance(
                    session, run, resource, page, time.perf_counter() - started, failures
                )
        if self.on_progress is not None:
            self.on_progress(progress)
        return ImportStatus.RUNNING

    async def _locked_run(
        self, session: AsyncSession, run_id: int, *, shared: bool = False
    ) -> ImportRun | None:
        """The run, under the shop's fold lock; None once cancelled or uninstalled."""
        run = await session.get(ImportRun, run_id)
        if run is None:
            return None
        await lock_installation(session, run.installation_id, shared=shared)
        await session.refresh(run)
        installation = await session.get(Installation, run.installation_id)
        if run.status is not ImportStatus.RUNNING or installation is None:
            return None
        if installation.status is not InstallationStatus.ACTIVE:
            return None
        return run

    async def _fold_one_by_one(
        self, run_id: int, resource: Resource, page: Page
    ) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        for node in page.nodes:
            try:
                async with unit_of_work(self.db) as session:
                    run = await session.get(ImportRun, run_id)
                    if run is None:
                        return failures
                    await lock_installation(session, run.installation_id)
                    await fold_nodes_one_by_one(
                        session, run.installation_id, resource.name, [node], utcnow()
                    )
            except Exception as exc:
                failures.append((object_id(node), f"{type(exc).__name__}: {exc}"[:4000]))
        return failures

    def _advance(
        self,
        session: AsyncSession,
        run: ImportRun,
        resource: Resource,
        page: Page,
        seconds: float,
        failures: list[tuple[str, str]],
    ) -> Progress:
        """Record the page (cursor, counts, failures) in the page's own transaction. The
        objects Saleor could not give whole are failures too: those read without a field
        count as folded, those not read at all do not."""
        state = resource_state(run, resource.name)
        state["cursor"] = page.end_cursor if page.has_next else state.get("cursor")
        state["processed"] = int(state.get("processed") or 0) + len(page.nodes) - len(failures)
        if page.total is not None:
            state["total"] = page.total
        state["finished"] = not page.has_next
        run.resources = {**(run.resources or {}), resource.name: state}
        run.busy_seconds += seconds
        failures = [*page.unreadable, *page.partial, *failures]
        run.failed += len(failures)
        run.heartbeat_at = utcnow()
        snapshot = progress_of(run)
        run.processed, run.total = snapshot.processed, snapshot.total
        for oid, message in failures:
            session.add(
                ImportFailure(
                    installation_id=run.installation_id,
                    run_id=run.id,
                    resource=resource.name,
                    object_id=oid[:256],
                    message=message,
                    occurred_at=utcnow(),
                )
            )
        return snapshot

    async def _settle_figures(self, run_id: int) -> bool:
        """Recompute the figures of every customer the run's pages touched, a few thousand
        per transaction (a restart goes on with those left); False if the run was stopped.
        On PostgreSQL two slices are settled at once, each in its own transaction (the
        database's work per customer, mostly index upkeep, is most of it)."""
        self.marked_stale.pop(run_id, None)
        async with self.db.session() as session:
            run = await session.get(ImportRun, run_id)
            if run is None:
                return False
            ids = await stale_profiles(session, run.installation_id)
        slices = [ids[n : n + SETTLE_PROFILES] for n in range(0, len(ids), SETTLE_PROFILES)]
        at_once = SETTLE_AT_ONCE if self.db.dialect == "postgresql" else 1
        for n in range(0, len(slices), at_once):
            started = time.perf_counter()
            try:
                async with asyncio.TaskGroup() as group:
                    settling = [
                        group.create_task(self._settle_slice(run_id, chunk))
                        for chunk in slices[n : n + at_once]
                    ]
            except BaseExceptionGroup as failed:  # the run records the error itself
                raise failed.exceptions[0] from None
            seconds = time.perf_counter() - started
            self.figures_seconds += seconds
            async with unit_of_work(self.db) as session:
                run = await session.get(ImportRun, run_id)
                if run is None or not all(task.result() for task in settling):
                    return False
                run.busy_seconds += seconds
                run.heartbeat_at = utcnow()
        return True

    async def _settle_slice(self, run_id: int, ids: list[int]) -> bool:
        async with unit_of_work(self.db) as session:
            run = await self._locked_run(session, run_id, shared=True)
            if run is None:
                return False
            await relaxed_commit(session)
            await settle_profiles(session, run.installation_id, ids)
        return True

    async def _complete(self, run_id: int) -> None:
        """The whole shop's derived figures in a few statements: RFM, scores, every segment
        and the analytics rollups (the customers' own figures were settled just before).
        Predictions follow with the next scheduled refit."""
        started = time.perf_counter()
        async with unit_of_work(self.db) as session:
            run = await self._locked_run(session, run_id)
            if run is None:
                return
            now, installation_id = utcnow(), run.installation_id
            if progress_of(run).processed:  # an empty shop (or nothing new) changes nothing
                await analyze(session, FOLDED_MODELS)  # the whole-shop statements' plans
                # Silent: customers move into segments by their history, which is no news
                # (flows on segment entries must not mail the shop's whole past).
                await refresh_installation(
                    session, installation_id, now, dialect=self.db.dialect, full=True, silent=True
                )
                await rollups.rebuild_installation(session, installation_id)
                await session.refresh(run)  # the whole-shop statements expired what was loaded
            run.busy_seconds += time.perf_counter() - started
            run.status, run.finished_at, run.heartbeat_at = ImportStatus.DONE, now, now
            snapshot = progress_of(run)
            run.processed, run.total = snapshot.processed, snapshot.total
        if self.on_progress is not None:
            self.on_progress(snapshot)

    async def _finish(self, run_id: int, status: ImportStatus, error: str | None) -> None:
        async with unit_of_work(self.db) as session:
            run = await session.get(ImportRun, run_id)
            if run is None or run.status is not ImportStatus.RUNNING:
                return
            run.status, run.last_error = status, error
            if status is not ImportStatus.QUEUED:
                run.finished_at = utcnow()
            else:
                enqueue_after_commit(session, IMPORT_ACTOR, run_id=run_id)
            snapshot = progress_of(run)
        if self.on_progress is not None:
            self.on_progress(snapshot)


async def failures_of(
    session: AsyncSession, run_id: int, *, limit: int = FAILURES_SHOWN
) -> list[ImportFailure]:
    return list(
        await session.scalars(
            select(ImportFailure)
            .where(ImportFailure.run_id == run_id)
            .order_by(ImportFailure.id)
            .limit(limit)
        )
    )
