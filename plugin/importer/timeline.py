"""Timeline rows of imported objects, as `plugin.timeline.service.record` writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.db.base import utcnow
from plugin.importer.items import Item


def entry(
    installation_id: int,
    profile_id: int,
    kind: str,
    item: Item,
    *,
    subject_type: str,
    summary: str,
    data: dict[str, Any] | None,
    key: str,
    recorded_at: datetime | None = None,
) -> dict[str, Any]:
    """`recorded_at`: the batch's one clock reading (now, when not given)."""
    return {
        "installation_id": installation_id,
        "profile_id": profile_id,
        "kind": kind,
        "occurred_at": item.issued_at,
        "dedup_key": key,
        "summary": summary[:1024],
        "subject_type": subject_type,
        "subject_id": item.saleor_id,
        "data": data,
        "recorded_at": recorded_at or utcnow(),
    }
