"""Adding a note: the row, plus a timeline entry so the card's history shows it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.notes.models import Note
from plugin.timeline.service import record

MAX_NOTE_LENGTH = 10_000


async def add_note(
    session: AsyncSession,
    *,
    installation_id: int,
    profile_id: int,
    text: str,
    now: datetime,
    author_user_id: str | None,
    author_email: str | None,
    author_token_id: int | None,
) -> Note:
    note = Note(
        installation_id=installation_id,
        profile_id=profile_id,
        text=text,
        author_user_id=author_user_id,
        author_email=author_email,
        author_token_id=author_token_id,
        created_at=now,
    )
    session.add(note)
    await session.flush()
    await record(
        session,
        installation_id=installation_id,
        profile_id=profile_id,
        kind="note_added",
        occurred_at=now,
        dedup_key=f"note:{note.id}",
        summary=text[:200],
        subject_type="note",
        subject_id=str(note.id),
        data={"author": author_email},
    )
    return note
