"""Import progress: the latest run of the shop's history import, polled while it goes.

`importRun` gives the percentage, the rate and an ETA (see `eta_seconds`); the page
re-reads this fragment every 1.5 s while the run is queued or running (`editors.js`), so
the bar moves with the worker's commits. `importStart` (MANAGE_USERS and MANAGE_APPS)
starts or resumes a run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dashboard_extension.formatting import parse_time
from dashboard_extension.views import Call, Rendered, read

LIVE = {"QUEUED", "RUNNING"}
RESOURCE_NAMES = {"customers": "Customers", "checkouts": "Checkouts", "orders": "Orders"}


def duration(seconds: float | None) -> str:
    """`4000` → `1 h 7 min`; `42` → `42 s`: an ETA a person reads at a glance."""
    if seconds is None:
        return "unknown"
    whole = int(round(seconds))
    if whole < 1:
        return "less than a second"
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def eta_seconds(run: dict[str, Any], now: datetime) -> float | None:
    """Seconds left, as a person waiting would measure them. The API's `etaSeconds` rates
    only the time spent folding (so a resumed run ignores its wait in the queue) and thus
    misses the time spent fetching pages from a slow or rate-limited Saleor; the rate
    since the run started counts that too. The longer of the two is shown."""
    api_eta = run.get("etaSeconds")
    started = parse_time(run.get("startedAt"))
    processed, total = int(run.get("processed") or 0), run.get("total")
    if started is None or total is None or processed <= 0:
        return float(api_eta) if api_eta is not None else None
    elapsed = max((now - started).total_seconds(), 0.001)
    wall_eta = max(0.0, (int(total) - processed) / (processed / elapsed))
    return max(wall_eta, float(api_eta or 0.0))


def _resource(resource: dict[str, Any]) -> dict[str, Any]:
    total, done = resource.get("total"), int(resource["processed"])
    percent = 100.0 if resource["finished"] else (done / total * 100 if total else None)
    return {
        **resource,
        "label": RESOURCE_NAMES.get(resource["name"], resource["name"]),
        "percent": percent,
    }


def rate(run: dict[str, Any], eta: float | None) -> float | None:
    """Objects per second at the pace the ETA assumes (the API's when it knows no better)."""
    total, processed = run.get("total"), int(run.get("processed") or 0)
    if eta and total is not None and int(total) > processed:
        return (int(total) - processed) / eta
    value = run.get("ratePerSecond")
    return float(value) if value is not None else None


async def import_progress(call: Call) -> Rendered:
    answer = await read(call, "import_run")
    data = answer.data or {}
    run = data["importRun"]
    eta = eta_seconds(run, call.now) if run else None
    held = data["viewer"]["permissions"]
    return Rendered(
        "fragments/import_progress.html",
        {
            "run": run,
            "live": bool(run and run["status"] in LIVE),
            "eta": duration(eta) if run else None,
            "rate": rate(run, eta) if run else None,
            "resources": [_resource(r) for r in run["resources"]] if run else [],
            "can_start": "MANAGE_USERS" in held and "MANAGE_APPS" in held,
        },
    )
