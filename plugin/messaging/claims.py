"""Claiming a batch of messages in one transaction: QUEUED → SENDING before any provider
is called, so a crash can lose a message but never send one twice.

Everything a message needs is read for the whole batch at once (profiles, consent,
suppression, bounces, recent sends for the caps, templates, checkouts and orders) and
the outcomes are written back in one statement each; per message only the rendering and
the decisions run. Messages refused, postponed or failing to render are settled in the
same transaction; a render that ran out of wall-clock time only (a busy machine, not a bad
template) is tried again after the send back-off, as a transient send failure is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BindParameter, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.context import AppContext
from plugin.db.locks import lock_profiles
from plugin.kit.after_commit import unit_of_work
from plugin.messaging import variables as template_vars
from plugin.messaging.channels import Outgoing, Provider
from plugin.messaging.config import NotConfigured, pacing_of, provider_for, sender_of, shop_settings
from plugin.messaging.consent import Ask, address_of, refusals
from plugin.messaging.links import Links, track_html
from plugin.messaging.models import (
    Channel,
    Message,
    MessageStatus,
    MessageTemplate,
    MessagingSettings,
)
from plugin.messaging.notes import Note, write_notes
from plugin.messaging.pacing import LONGEST, next_slot, recent_sends
from plugin.messaging.templates import Rendered, TemplateProblem, render
from plugin.profiles.models import Profile

MESSAGE_CLAIM = timedelta(minutes=2)  # a tick's hand-out holds this long
STAFF_TOPIC = "staff"  # notify_staff: to the shop's staff, about this customer
MessageRow = Any  # a row of COLUMNS (SQLAlchemy types rows by their column count)
MESSAGES = cast(Table, Message.__table__)
COLUMNS = (
    MESSAGES.c.id,
    MESSAGES.c.installation_id,
    MESSAGES.c.profile_id,
    MESSAGES.c.channel,
    MESSAGES.c.marketing,
    MESSAGES.c.topic,
    MESSAGES.c.template_key,
    MESSAGES.c.variables,
    MESSAGES.c.attempts,
    MESSAGES.c.next_attempt_at,
    MESSAGES.c.created_at,
    MESSAGES.c.flow_id,
    MESSAGES.c.variant,
)


@dataclass
class Claimed:
    """A message marked SENDING, with what its provider is handed."""

    message_id: int
    installation_id: int
    profile_id: int
    channel: Channel
    template_key: str
    flow_id: int | None
    variant: str | None
    subject: str | None
    recipient: str
    provider: Provider
    outgoing: Outgoing
    attempts: int
    claimed_at: datetime
    links: list[str] = field(default_factory=list)
    postponed_reason: str | None = None

    @property
    def id(self) -> int:
        return self.message_id


@dataclass
class _Settled:
    """What one shop's part of the batch decided, written back in bulk."""

    closed: list[dict[str, Any]] = field(default_factory=list)  # skipped or failed
    postponed: list[dict[str, Any]] = field(default_factory=list)
    retried: list[dict[str, Any]] = field(default_factory=list)  # an attempt that counts
    notes: list[Note] = field(default_factory=list)
    claimed: list[Claimed] = field(default_factory=list)

    def close(self, row: MessageRow, status: MessageStatus, reason: str, now: datetime) -> None:
        kind = "message_skipped" if status is MessageStatus.SKIPPED else "message_failed"
        self.closed.append({"b_id": row.id, "b_status": status, "b_error": reason[:1024]})
        self.notes.append(
            Note.of(row, kind, f"Message not sent: {reason}", now, row.attempts, reason)
        )

    def retry(self, row: MessageRow, reason: str, now: datetime, max_attempts: int) -> bool:
        """A transient failure before the provider: counts as an attempt and waits the
        back-off, or fails for good once out of attempts (True then, as `close`)."""
        attempts = row.attempts + 1
        if attempts < max_attempts:
            error = f"transient: {reason}"[:1024]
            self.retried.append(
                {"b_id": row.id, "b_status": MessageStatus.QUEUED, "b_error": error}
                | {"b_next": now + backoff(attempts)}
            )
            return False
        reason = f"gave up after {attempts} tries: {reason}"
        self.retried.append(
            {"b_id": row.id, "b_status": MessageStatus.FAILED, "b_error": reason[:1024]}
            | {"b_next": None}
        )
        self.notes.append(
            Note.of(row, "message_failed", f"Message not sent: {reason}", now, attempts, reason)
        )
        return True


def backoff(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, … capped at 6 h."""
    return min(timedelta(seconds=30 * 4 ** max(attempts - 1, 0)), timedelta(hours=6))


async def claim(
    ctx: AppContext,
    links: Links,
    ids: Sequence[int],
    now: datetime,
    handed_out: bool,
    *,
    due_too: int = 0,
) -> tuple[list[Claimed], list[int]]:
    """Claim the due, QUEUED messages among `ids` (others are left alone) and, with
    `due_too`, up to that many more of the same shops that are due now: a send job
    under load takes a whole batch, and the jobs of those find nothing left to do.
    Returns the claimed messages and the ids refused or failed here."""
    # a tick's hand-out pushed next_attempt_at ahead by the claim period
    latest = now + MESSAGE_CLAIM if handed_out else now
    due = MESSAGES.c.next_attempt_at.is_(None) | (MESSAGES.c.next_attempt_at <= latest)
    async with unit_of_work(ctx.db) as session:
        # the asked-for rows wait for a lock another claim holds (then find them taken);
        # rows that are not due are not locked at all
        rows = list(
            (
                await session.execute(
                    select(*COLUMNS)
                    .where(MESSAGES.c.id.in_(ids), MESSAGES.c.status == MessageStatus.QUEUED, due)
                    .order_by(MESSAGES.c.id)
                    .with_for_update()
                )
            ).all()
        )
        if rows and due_too > 0:
            rows += (
                await session.execute(
                    select(*COLUMNS)
                    .where(
                        MESSAGES.c.installation_id.in_({r.installation_id for r in rows}),
                        MESSAGES.c.status == MessageStatus.QUEUED,
                        MESSAGES.c.next_attempt_at <= now,
                        MESSAGES.c.id.not_in([r.id for r in rows]),
                    )
                    .order_by(MESSAGES.c.next_attempt_at)
                    .limit(due_too)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        # Caps count a customer's sends, SENDING included: whoever claims a customer's
        # marketing message second waits here until the first claim has committed.
        await lock_profiles(session, (r.profile_id for r in rows if r.marketing))
        by_shop: dict[int, list[MessageRow]] = defaultdict(list)
        for row in rows:
            by_shop[row.installation_id].append(row)
        claimed: list[Claimed] = []
        closed: list[int] = []
        for installation_id, shop_rows in by_shop.items():
            settled = await _decide(ctx, session, links, installation_id, shop_rows, now)
            claimed += await _write(session, settled, now)
            closed += [row["b_id"] for row in settled.closed]
            closed += [r["b_id"] for r in settled.retried if r["b_status"] is MessageStatus.FAILED]
        return claimed, closed


class _Shop:
    """One shop's settings, templates and providers, read once per batch."""

    def __init__(
        self, ctx: AppContext, settings: MessagingSettings, templates: list[MessageTemplate]
    ) -> None:
        self.ctx, self.settings = ctx, settings
        self.pacing = pacing_of(settings)
        self.sender = sender_of(settings, ctx.settings)
        self.templates = {t.key: t for t in templates}
        self._providers: dict[Channel, Provider | Exception] = {}

    def provider(self, channel: Channel) -> Provider:
        if channel not in self._providers:
            try:
                self._providers[channel] = provider_for(
                    channel, self.settings, self.ctx.settings, self.ctx.http, self.ctx.box
                )
            except (NotConfigured, ValueError) as problem:
                self._providers[channel] = problem
        found = self._providers[channel]
        if isinstance(found, Exception):
            raise found
        return found

    def template(self, key: str) -> MessageTemplate:
        found = self.templates.get(key)
        if found is None:
            raise TemplateProblem("", "template", f"no template {key!r}")
        return found


def _wants_recommendations(template: MessageTemplate) -> bool:
    return any(
        "recommendations" in str(v) for parts in template.contents.values() for v in parts.values()
    )


async def _decide(
    ctx: AppContext,
    session: AsyncSession,
    links: Links,
    installation_id: int,
    rows: list[MessageRow],
    now: datetime,
) -> _Settled:
    settled = _Settled()
    profiles = {
        p.id: p
        for p in await session.scalars(
            select(Profile).where(Profile.id.in_({r.profile_id for r in rows}))
        )
    }
    rows = [r for r in rows if r.profile_id in profiles]
    customers = [r for r in rows if r.topic != STAFF_TOPIC]
    asks = [Ask(profiles[r.profile_id], r.channel, r.marketing, r.topic) for r in customers]
    reasons = dict(
        zip(
            (r.id for r in customers),
            await refusals(session, installation_id, asks),
            strict=True,
        )
    )
    shop = _Shop(
        ctx,
        await shop_settings(session, installation_id),
        list(
            await session.scalars(
                select(MessageTemplate).where(
                    MessageTemplate.installation_id == installation_id,
                    MessageTemplate.key.in_({r.template_key for r in rows}),
                )
            )
        ),
    )
    marketing = {r.profile_id for r in rows if r.marketing}
    recent = await recent_sends(session, marketing, now - LONGEST, [r.id for r in rows])
    loaded = await template_vars.load(session, installation_id, [r.variables for r in rows])
    recommended: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        profile = profiles[row.profile_id]
        staff_to = str((row.variables or {}).get("staff_to") or "")
        if row.topic == STAFF_TOPIC:
            reason = None if staff_to else "no staff address"
        else:
            reason = reasons[row.id]
        if reason is not None:
            settled.close(row, MessageStatus.SKIPPED, reason, now)
            continue
        postponed_reason = None
        sent_before = recent.setdefault((profile.id, row.channel), [])
        if row.marketing:
            tz = (profile.saleor_metadata or {}).get("timezone")
            slot = next_slot(
                sent_before, now, row.channel, shop.pacing, tz if isinstance(tz, str) else None
            )
            if slot > now:
                if slot - row.created_at <= shop.pacing.max_delay:
                    settled.postponed.append(
                        {
                            "b_id": row.id,
                            "b_next": slot,
                            "b_reason": f"frequency cap or quiet hours: next slot "
                            f"{slot.isoformat()}",
                        }
                    )
                    continue
                postponed_reason = "sent at the maximum delay although over the cap"
        try:
            provider = shop.provider(row.channel)
            template = shop.template(row.template_key)
            if _wants_recommendations(template) and profile.id not in recommended:
                recommended[profile.id] = await template_vars.recommendations(session, profile)
            variables = template_vars.assemble(
                profile, row.variables, loaded, recommended.get(profile.id, [])
            )
            variables["unsubscribe_url"] = unsubscribe = links.unsubscribe(row.id)
            variables["preferences_url"] = links.preferences(installation_id, profile.id)
            rendered = render(template.contents, profile.language, variables)
        except (TemplateProblem, NotConfigured, ValueError) as problem:
            if isinstance(problem, TemplateProblem) and problem.transient:
                settled.retry(row, str(problem), now, ctx.settings.messaging_send_max_attempts)
            else:
                settled.close(row, MessageStatus.FAILED, str(problem), now)
            continue
        recipient = staff_to if row.topic == STAFF_TOPIC else address_of(profile, row.channel) or ""
        if row.marketing:
            sent_before.append(now)  # a second one in this batch waits its turn
            sent_before.sort()
        settled.claimed.append(
            _claimed(
                row, links, unsubscribe, shop, provider, rendered, recipient, now, postponed_reason
            )
        )
    return settled


def _claimed(
    row: MessageRow,
    links: Links,
    unsubscribe: str,
    shop: _Shop,
    provider: Provider,
    rendered: Rendered,
    recipient: str,
    now: datetime,
    postponed_reason: str | None,
) -> Claimed:
    html, recorded = track_html(rendered.html, links, row.id) if rendered.html else ("", [])
    headers: dict[str, str] = {}
    if row.channel is Channel.EMAIL and row.marketing:
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Claimed(
        message_id=row.id,
        installation_id=row.installation_id,
        profile_id=row.profile_id,
        channel=row.channel,
        template_key=row.template_key,
        flow_id=row.flow_id,
        variant=row.variant,
        subject=rendered.subject[:998] or None,
        recipient=recipient,
        provider=provider,
        outgoing=Outgoing(
            to=recipient,
            subject=rendered.subject,
            html=html,
            text=rendered.text,
            sender=shop.sender,
            headers=headers,
            message_id=f"<crm-{row.installation_id}-{row.id}@saleor-crm>",
        ),
        attempts=row.attempts + 1,
        claimed_at=now,
        links=recorded,
        postponed_reason=postponed_reason,
    )


def _param(name: str, column: str) -> BindParameter[Any]:
    """A bind parameter typed like its column (enums, JSON and times convert alike)."""
    return bindparam(name, type_=MESSAGES.c[column].type)


async def _write(session: AsyncSession, settled: _Settled, now: datetime) -> list[Claimed]:
    """The batch's outcomes, one statement each; returns the messages now SENDING."""
    by_id = MESSAGES.c.id == bindparam("b_id")
    if settled.closed:
        await session.execute(
            update(MESSAGES)
            .where(by_id)
            .values(status=_param("b_status", "status"), error=_param("b_error", "error")),
            settled.closed,
        )
    if settled.postponed:
        await session.execute(
            update(MESSAGES)
            .where(by_id)
            .values(
                next_attempt_at=_param("b_next", "next_attempt_at"),
                postponed_reason=_param("b_reason", "postponed_reason"),
            ),
            settled.postponed,
        )
    if settled.retried:
        await session.execute(
            update(MESSAGES)
            .where(by_id)
            .values(
                status=_param("b_status", "status"),
                error=_param("b_error", "error"),
                attempts=MESSAGES.c.attempts + 1,
                next_attempt_at=func.coalesce(
                    _param("b_next", "next_attempt_at"), MESSAGES.c.next_attempt_at
                ),
            ),
            settled.retried,
        )
    await write_notes(session, settled.notes)
    if not settled.claimed:
        return []
    # the flip is guarded by the status: only a row still QUEUED is ever handed over
    flipped = set(
        await session.scalars(
            update(MESSAGES)
            .where(
                MESSAGES.c.id.in_([c.message_id for c in settled.claimed]),
                MESSAGES.c.status == MessageStatus.QUEUED,
            )
            .values(
                status=MessageStatus.SENDING,
                attempts=MESSAGES.c.attempts + 1,
                sent_at=now,
                handed_at=None,  # this attempt's group is marked when it goes
            )
            .returning(MESSAGES.c.id)
        )
    )
    claimed = [c for c in settled.claimed if c.message_id in flipped]
    if claimed:
        await session.execute(
            update(MESSAGES)
            .where(by_id)
            .values(
                recipient=_param("b_recipient", "recipient"),
                subject=_param("b_subject", "subject"),
                links=_param("b_links", "links"),
                # a message sent after a postponement keeps saying why it waited
                postponed_reason=func.coalesce(
                    _param("b_reason", "postponed_reason"), MESSAGES.c.postponed_reason
                ),
            ),
            [
                {
                    "b_id": c.message_id,
                    "b_recipient": c.recipient[:320],
                    "b_subject": c.subject,
                    "b_links": c.links,
                    "b_reason": c.postponed_reason,
                }
                for c in claimed
            ],
        )
    return claimed
