"""The work behind `crm segments refresh`, `crm inbox replay` and `crm customer …`.

Each returns what the command prints; refusals are `click.ClickException`s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from plugin.console.lookup import customer_by_email, installation_for
from plugin.console.progress import ProgressLine
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.inbox import service as inbox
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.privacy import anonymize_profile, export_profile
from plugin.saleor.models import Installation, InstallationStatus
from plugin.segments.fill import fill_waiting
from plugin.segments.membership import Changes, reevaluate_profiles, refresh_installation
from plugin.segments.progress import Recompute
from plugin.settings import Settings
from plugin.timeline.service import record


async def refresh_all_segments(
    db: Database, installation_id: int | None, *, chunk_size: int
) -> list[str]:
    """Every active shop (or the one asked for): its refresh in one transaction, then its
    waiting segments in chunks of `chunk_size` customers with a progress bar."""
    async with db.session() as session:
        if installation_id is not None:
            ids = [(await installation_for(session, installation_id)).id]
        else:
            ids = list(
                await session.scalars(
                    select(Installation.id)
                    .where(Installation.status == InstallationStatus.ACTIVE)
                    .order_by(Installation.id)
                )
            )
    if not ids:
        return ["no installed shop: nothing to refresh"]
    lines = []
    for shop in ids:
        now = utcnow()
        async with unit_of_work(db) as session:
            await lock_installation(session, shop)
            changes = await refresh_installation(
                session, shop, now, dialect=db.dialect, full=True, skip_waiting=True
            )
        changes.update(await fill_with_progress(db, shop, now, chunk_size=chunk_size))
        entered = sum(len(c.entered) for c in changes.values())
        left = sum(len(c.left) for c in changes.values())
        lines.append(
            f"installation {shop}: {len(changes)} segments refreshed, "
            f"{entered} entered, {left} left"
        )
    return lines


async def fill_with_progress(
    db: Database, installation_id: int, now: datetime, *, chunk_size: int
) -> dict[str, Changes]:
    """The shop's waiting segments in chunks, a progress line on stderr after each."""
    line = ProgressLine()
    last: list[Recompute] = []

    async def show(progress: Recompute) -> None:
        last.append(progress)
        line(progress)

    changes = await fill_waiting(db, installation_id, now, chunk_size=chunk_size, on_chunk=show)
    line.close(last[-1] if last else None)
    return changes


async def replay(db: Database, *, failed: bool, installation_id: int | None) -> str:
    """Failed events are reset and queued; waiting ones are queued again. Without Redis
    there is no worker to hand them to, so they are folded here."""
    if installation_id is not None:
        async with db.session() as session:
            await installation_for(session, installation_id, active=False)
    status = InboxStatus.FAILED if failed else InboxStatus.PENDING
    async with unit_of_work(db) as session:
        query = select(InboxEvent.id).where(InboxEvent.status == status)
        if installation_id is not None:
            query = query.where(InboxEvent.installation_id == installation_id)
        ids = list(await session.scalars(query.order_by(InboxEvent.id)))
        if failed and ids:
            await inbox.replay(session, installation_id=installation_id, event_ids=ids)
    kind = "failed" if failed else "waiting"
    if not ids:
        return f"no {kind} events to replay"
    if Settings().redis_url:
        from jobs import actors  # noqa: F401  (declares the actors on the broker)
        from jobs.runtime import send
        from plugin.kit.after_commit import Job

        for event_id in ids:
            send(Job(inbox.FOLD_ACTOR, {"event_id": event_id}))
        return f"{len(ids)} {kind} event(s) queued for the workers"
    folded = [await inbox.fold(db, event_id) for event_id in ids]
    return f"{sum(folded)} of {len(ids)} {kind} event(s) folded"


async def export_by_email(db: Database, email: str, installation_id: int | None) -> dict[str, Any]:
    async with unit_of_work(db) as session:
        profile = await customer_by_email(session, email, installation_id)
        now = utcnow()
        document = await export_profile(session, profile, now)
        await record(
            session,
            installation_id=profile.installation_id,
            profile_id=profile.id,
            kind="customer_exported",
            occurred_at=now,
            dedup_key=f"exported:{profile.id}:{now.isoformat()}",
            summary="Personal data exported (command line)",
            data={"by": "cli"},
        )
    return document


async def anonymize_by_email(db: Database, email: str, installation_id: int | None) -> str:
    async with unit_of_work(db) as session:
        profile = await customer_by_email(session, email, installation_id)
        await lock_installation(session, profile.installation_id)
        now = utcnow()
        erasure = await anonymize_profile(session, profile, now)
        await reevaluate_profiles(session, profile.installation_id, [profile.id], now)
        profile_id = profile.id
    counts = ", ".join(
        f"{n} {what}"
        for what, n in (
            ("identities", erasure.identities),
            ("orders", erasure.orders),
            ("checkouts", erasure.checkouts),
            ("timeline entries", erasure.timeline_entries),
            ("notes", erasure.notes),
            ("raw webhooks", erasure.inbox_events),
            *erasure.other.items(),
        )
    )
    return f"customer {profile_id} anonymized: {counts}"
