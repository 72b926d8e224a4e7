"""What an import run has done and how long it still needs (for the dashboard and CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugin.importer.models import ImportRun, ImportStatus
from plugin.importer.source import RESOURCES


@dataclass(frozen=True)
class ResourceProgress:
    name: str
    processed: int
    total: int | None
    finished: bool


@dataclass(frozen=True)
class Progress:
    run_id: int
    installation_id: int
    status: ImportStatus
    processed: int
    total: int | None
    failed: int
    percent: float | None  # 0–100; None while Saleor's counts are not known yet
    eta_seconds: float | None  # None until a rate is known, 0 when finished
    rate_per_second: float | None
    resources: list[ResourceProgress]
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


def resource_state(run: ImportRun, name: str) -> dict[str, Any]:
    state = (run.resources or {}).get(name)
    return dict(state) if isinstance(state, dict) else {}


def progress_of(run: ImportRun) -> Progress:
    resources = []
    for name in RESOURCES:
        state = resource_state(run, name)
        total = state.get("total")
        resources.append(
            ResourceProgress(
                name=name,
                processed=int(state.get("processed") or 0),
                total=int(total) if isinstance(total, int) else None,
                finished=bool(state.get("finished")),
            )
        )
    processed = sum(r.processed for r in resources)
    known = all(r.total is not None or r.finished for r in resources)
    total = sum(max(r.total or 0, r.processed) for r in resources) if known else None
    finished = run.status is ImportStatus.DONE
    percent: float | None = None
    if finished:
        percent = 100.0
    elif total is not None:
        percent = 100.0 if total == 0 else min(99.9, 100.0 * processed / total)
    rate = processed / run.busy_seconds if run.busy_seconds > 0 and processed else None
    eta: float | None = None
    if finished:
        eta = 0.0
    elif total is not None and rate:
        eta = max(0.0, (total - processed) / rate)
    return Progress(
        run_id=run.id,
        installation_id=run.installation_id,
        status=run.status,
        processed=processed,
        total=total,
        failed=run.failed,
        percent=percent,
        eta_seconds=eta,
        rate_per_second=rate,
        resources=resources,
        started_at=run.started_at,
        finished_at=run.finished_at,
        last_error=run.last_error,
    )
