"""`crm import`: run (or follow) a shop's import in the foreground, with a progress bar."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import click

from plugin.console.lookup import describe, installation_for
from plugin.console.progress import ProgressLine
from plugin.context import saleor_timeout
from plugin.db.engine import Database
from plugin.importer.models import ImportRun, ImportStatus
from plugin.importer.progress import Progress, progress_of
from plugin.importer.service import Importer, failures_of, start_import
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.saleor.egress import SaleorEgress
from plugin.settings import Settings

FOLLOW_INTERVAL_SECONDS = 1.0


async def import_with_progress(
    db: Database, settings: Settings, installation_id: int | None
) -> str:
    """Import here, or follow the worker that holds the run; the run's final status."""
    async with unit_of_work(db) as session:
        installation = await installation_for(session, installation_id)
        run = await start_import(session, installation.id, requested_by="cli", enqueue=False)
        run_id, label = run.id, describe(installation)
    click.echo(f"importing the history of installation {label} (run {run_id})", err=True)
    line = ProgressLine()
    last: list[Progress] = []

    def show(progress: Progress) -> None:
        last.append(progress)
        line(progress)

    box = SecretBox(settings.secret_key.get_secret_value())
    # Under the egress policy, as the import job: the shop's name may point elsewhere now.
    egress = SaleorEgress(settings.allowed_saleor_urls)
    async with egress.client(saleor_timeout(settings, 3)) as http:
        status = await Importer(db, http, box, settings, on_progress=show).run(run_id)
    if status is ImportStatus.RUNNING:
        click.echo("a worker is running this import; following its progress", err=True)
        status = await _follow(db, run_id, show)
    line.close(last[-1] if last else None)
    await _report_failures(db, run_id)
    return status.value


async def _follow(db: Database, run_id: int, show: Callable[[Progress], None]) -> ImportStatus:
    while True:
        async with db.session() as session:
            run = await session.get(ImportRun, run_id)
            if run is None:
                return ImportStatus.CANCELLED
            progress = progress_of(run)
        show(progress)
        if run.status not in (ImportStatus.RUNNING, ImportStatus.QUEUED):
            return run.status
        await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)


async def _report_failures(db: Database, run_id: int) -> None:
    async with db.session() as session:
        run = await session.get(ImportRun, run_id)
        failures = await failures_of(session, run_id, limit=50)
    if run is not None and run.last_error:
        click.echo(f"error: {run.last_error}", err=True)
    for failure in failures:
        click.echo(
            f"not imported: {failure.resource} {failure.object_id}: {failure.message}", err=True
        )
    if run is not None and run.failed > len(failures):
        click.echo(f"… and {run.failed - len(failures)} more", err=True)
