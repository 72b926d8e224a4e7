"""The import of a shop's history, as the dashboard's import page shows it."""

from __future__ import annotations

from datetime import datetime

import strawberry

from plugin.api.ids import to_global_id
from plugin.importer.models import ImportFailure as ImportFailureRow
from plugin.importer.models import ImportRun as ImportRunRow
from plugin.importer.models import ImportStatus as Status
from plugin.importer.progress import progress_of

ImportStatus = strawberry.enum(
    Status,
    name="ImportStatus",
    description="QUEUED (waiting for a worker), RUNNING, DONE, FAILED (see `lastError`; "
    "`importStart` resumes it), CANCELLED (the app was uninstalled).",
)


@strawberry.type(description="One of Saleor's lists within an import.")
class ImportResourceProgress:
    name: str = strawberry.field(description="customers, checkouts or orders.")
    processed: int
    total: int | None = strawberry.field(description="Saleor's totalCount; null until read.")
    finished: bool


@strawberry.type(description="An object Saleor listed that could not be imported, and why.")
class ImportFailure:
    resource: str
    object_id: str = strawberry.field(description="The object's Saleor id.")
    message: str
    occurred_at: datetime

    @classmethod
    def of(cls, row: ImportFailureRow) -> ImportFailure:
        return cls(
            resource=row.resource,
            object_id=row.object_id,
            message=row.message,
            occurred_at=row.occurred_at,
        )


@strawberry.type(description="One import of the shop's customers, checkouts and orders.")
class ImportRun:
    id: strawberry.ID
    status: ImportStatus  # type: ignore[valid-type]
    requested_by: str = strawberry.field(description="install, cli, or the staff member.")
    percent: float | None = strawberry.field(
        description="0–100 for a progress bar; null until Saleor's counts are known."
    )
    processed: int
    total: int | None
    failed: int = strawberry.field(description="Objects that could not be imported.")
    eta_seconds: float | None = strawberry.field(
        description="Estimated seconds left at the rate so far; 0 when done."
    )
    rate_per_second: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None = strawberry.field(description="Why the run failed, if it did.")
    resources: list[ImportResourceProgress]
    failures: list[ImportFailure] = strawberry.field(
        description="The first objects that could not be imported (up to 100)."
    )

    @classmethod
    def of(cls, row: ImportRunRow, failures: list[ImportFailureRow]) -> ImportRun:
        progress = progress_of(row)
        return cls(
            id=strawberry.ID(to_global_id("ImportRun", row.id)),
            status=row.status,
            requested_by=row.requested_by,
            percent=progress.percent,
            processed=progress.processed,
            total=progress.total,
            failed=progress.failed,
            eta_seconds=progress.eta_seconds,
            rate_per_second=progress.rate_per_second,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            last_error=row.last_error,
            resources=[
                ImportResourceProgress(
                    name=r.name, processed=r.processed, total=r.total, finished=r.finished
                )
                for r in progress.resources
            ],
            failures=[ImportFailure.of(f) for f in failures],
        )
