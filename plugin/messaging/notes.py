"""The messages' entries on the customer's timeline (sent, skipped, failed, converted),
written many at a time: one INSERT … ON CONFLICT DO NOTHING per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.messaging.models import Channel
from plugin.timeline.models import TimelineEntry


class _MessageLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def installation_id(self) -> int: ...
    @property
    def profile_id(self) -> int: ...
    @property
    def channel(self) -> Channel: ...
    @property
    def template_key(self) -> str: ...
    @property
    def flow_id(self) -> int | None: ...
    @property
    def variant(self) -> str | None: ...


@dataclass(frozen=True)
class Note:
    installation_id: int
    profile_id: int
    message_id: int
    kind: str
    summary: str
    occurred_at: datetime
    dedup_key: str
    data: dict[str, Any]

    @classmethod
    def of(
        cls,
        message: _MessageLike,
        kind: str,
        summary: str,
        now: datetime,
        attempts: int,
        error: str | None = None,
        **extra: Any,
    ) -> Note:
        """The entry for one message event; unique per message, kind and attempt."""
        return cls(
            installation_id=message.installation_id,
            profile_id=message.profile_id,
            message_id=message.id,
            kind=kind,
            summary=summary[:1024],
            occurred_at=now,
            dedup_key=f"message:{message.id}:{kind}:{attempts}",
            data={
                "message_id": message.id,
                "channel": message.channel.value,
                "template": message.template_key,
                "flow_id": message.flow_id,
                "variant": message.variant,
                "error": error[:1024] if error else None,
                **extra,
            },
        )


async def write_notes(session: AsyncSession, notes: Sequence[Note]) -> None:
    if not notes:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(cast(Table, TimelineEntry.__table__)).on_conflict_do_nothing(
        index_elements=["installation_id", "dedup_key"]
    )
    await session.execute(
        statement,
        [
            {
                "installation_id": n.installation_id,
                "profile_id": n.profile_id,
                "kind": n.kind,
                "occurred_at": n.occurred_at,
                "dedup_key": n.dedup_key,
                "summary": n.summary,
                "subject_type": "message",
                "subject_id": str(n.message_id),
                "data": n.data,
            }
            for n in notes
        ],
    )
