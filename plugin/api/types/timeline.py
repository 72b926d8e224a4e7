"""Timeline items and notes."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from plugin.api.ids import to_global_id
from plugin.notes.models import Note as NoteRow
from plugin.timeline.models import TimelineEntry


@strawberry.type
class TimelineItem:
    pk: strawberry.Private[int]
    kind: str = strawberry.field(description="The Saleor event (`order_created`, …) or ours.")
    occurred_at: datetime
    summary: str
    subject_type: str | None
    subject_id: str | None
    data: JSON | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("TimelineItem", self.pk))

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineItem:
        return cls(
            pk=entry.id,
            kind=entry.kind,
            occurred_at=entry.occurred_at,
            summary=entry.summary,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            data=JSON(entry.data) if entry.data is not None else None,
        )


@strawberry.type
class Note:
    pk: strawberry.Private[int]
    text: str
    author_email: str | None
    author_user_id: str | None = strawberry.field(description="Saleor User id of the author.")
    created_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Note", self.pk))

    @classmethod
    def of(cls, note: NoteRow) -> Note:
        return cls(
            pk=note.id,
            text=note.text,
            author_email=note.author_email,
            author_user_id=note.author_user_id,
            created_at=note.created_at,
        )
