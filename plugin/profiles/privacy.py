"""GDPR: everything we hold on a person as one JSON document, and erasure of their PII.

Both are plain domain functions over a session, so the API and a CLI share them. Erasure
keeps what is anonymous (orders, totals, dates, segment membership counts) and replaces
contact identities with salted hashes (plugin.profiles.suppression) so the shop never
writes to an erased address again.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutLine, Fulfillment, Order, OrderLine
from plugin.db.base import Base
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.notes.models import Note
from plugin.profiles.erasers import ErasureScope, erasers, exporters
from plugin.profiles.models import (
    ConsentState,
    Identity,
    IdentityKind,
    Profile,
    ProfileTag,
    ProfileTotal,
)
from plugin.profiles.suppression import is_erased, salt_for, suppression_hash
from plugin.segments.models import Segment, SegmentMembership
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record

EXPORT_FORMAT = "saleor-crm.customer-export/1"
ERASED = "[erased]"
# Shorter strings (a country code, an initial) would erase unrelated text.
MIN_NEEDLE_LENGTH = 3
# Profile columns that name or locate the person; everything else is anonymous figures.
PERSONAL_PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "note",
    "external_reference",
    "addresses",
    "saleor_metadata",
    "saleor_user_id",
    "referrer",
)
ADDRESS_KEYS = (
    "firstName",
    "lastName",
    "companyName",
    "streetAddress1",
    "streetAddress2",
    "city",
    "cityArea",
    "postalCode",
    "phone",
)


def plain(value: Any) -> Any:
    """A JSON-ready copy: datetimes as ISO 8601, money as decimal strings, enums by value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def row_dict(row: Base, *skip: str) -> dict[str, Any]:
    columns = row.__table__.columns
    left_out = {"installation_id", *skip}
    return {c.key: plain(getattr(row, c.key)) for c in columns if c.key not in left_out}


async def _all(session: AsyncSession, statement: Any) -> list[Any]:
    return list(await session.scalars(statement))


async def export_profile(session: AsyncSession, profile: Profile, now: datetime) -> dict[str, Any]:
    """All we hold on one person; a constant number of queries whatever the history."""
    pid = profile.id
    identities = await _all(session, select(Identity).where(Identity.profile_id == pid))
    orders = await _all(session, select(Order).where(Order.profile_id == pid).order_by(Order.id))
    order_lines = await _all(
        session,
        select(OrderLine)
        .where(OrderLine.order_id.in_([o.id for o in orders]))
        .order_by(OrderLine.id),
    )
    checkouts = await _all(
        session, select(Checkout).where(Checkout.profile_id == pid).order_by(Checkout.id)
    )
    checkout_lines = await _all(
        session,
        select(CheckoutLine)
        .where(CheckoutLine.checkout_id.in_([c.id for c in checkouts]))
        .order_by(CheckoutLine.id),
    )
    memberships = list(
        await session.execute(
            select(Segment.key, Segment.name, SegmentMembership.since)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(SegmentMembership.profile_id == pid)
            .order_by(Segment.key)
        )
    )
    by_order: dict[int, list[dict[str, Any]]] = {}
    for line in order_lines:
        by_order.setdefault(line.order_id, []).append(row_dict(line, "order_id"))
    by_checkout: dict[int, list[dict[str, Any]]] = {}
    for cline in checkout_lines:
        by_checkout.setdefault(cline.checkout_id, []).append(row_dict(cline, "checkout_id"))
    return {
        "format": EXPORT_FORMAT,
        "generated_at": now.isoformat(),
        "profile": row_dict(profile),
        "identities": [row_dict(i, "profile_id") for i in sorted(identities, key=lambda i: i.id)],
        "tags": sorted(
            await _all(session, select(ProfileTag.tag).where(ProfileTag.profile_id == pid))
        ),
        "totals": [
            row_dict(t, "profile_id")
            for t in await _all(
                session,
                select(ProfileTotal)
                .where(ProfileTotal.profile_id == pid)
                .order_by(ProfileTotal.currency),
            )
        ],
        "notes": [
            row_dict(n, "profile_id")
            for n in await _all(
                session, select(Note).where(Note.profile_id == pid).order_by(Note.id)
            )
        ],
        "orders": [{**row_dict(o, "profile_id"), "lines": by_order.get(o.id, [])} for o in orders],
        "checkouts": [
            {**row_dict(c, "profile_id"), "lines": by_checkout.get(c.id, [])} for c in checkouts
        ],
        "fulfillments": [
            row_dict(f, "profile_id")
            for f in await _all(
                session,
                select(Fulfillment).where(Fulfillment.profile_id == pid).order_by(Fulfillment.id),
            )
        ],
        "timeline": [
            row_dict(e, "profile_id")
            for e in await _all(
                session,
                select(TimelineEntry)
                .where(TimelineEntry.profile_id == pid)
                .order_by(TimelineEntry.occurred_at, TimelineEntry.id),
            )
        ],
        "segments": [
            {"key": key, "name": name, "since": plain(since)} for key, name, since in memberships
        ],
        **await _registered_sections(session, profile, identities, orders, checkouts, now),
    }


async def _registered_sections(
    session: AsyncSession,
    profile: Profile,
    identities: list[Identity],
    orders: list[Order],
    checkouts: list[Checkout],
    now: datetime,
) -> dict[str, Any]:
    """What other packages hold on the person (messages, parcels…), one key each."""
    scope = _scope(profile, identities, orders, checkouts, now)
    return {name: plain(await exporter(session, scope)) for name, exporter in exporters()}


def _scope(
    profile: Profile,
    identities: list[Identity],
    orders: list[Order],
    checkouts: list[Checkout],
    now: datetime,
) -> ErasureScope:
    needles = _needles(profile, identities, orders, checkouts)
    return ErasureScope(profile.installation_id, profile.id, needles, pattern(needles), now)


@dataclass(frozen=True)
class Erasure:
    """What an anonymisation touched (counts only: the report itself holds no PII)."""

    identities: int
    orders: int
    checkouts: int
    fulfillments: int
    timeline_entries: int
    notes: int
    inbox_events: int
    # Rows erased by each package's registered eraser (plugin.profiles.erasers).
    other: dict[str, int] = field(default_factory=dict)


def pattern(needles: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for all needles, longest first ("Ann Lee" before "Ann")."""
    if not needles:
        return None
    ordered = sorted(set(needles), key=lambda n: (-len(n), n))
    return re.compile("|".join(re.escape(n) for n in ordered), re.IGNORECASE)


def scrub(value: Any, found: re.Pattern[str] | None) -> Any:
    """`value` with every needle replaced, inside JSON documents too."""
    if found is None:
        return value
    if isinstance(value, str):
        return found.sub(ERASED, value)
    if isinstance(value, dict):
        return {k: scrub(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, found) for v in value]
    return value


def _needles(
    profile: Profile, identities: list[Identity], orders: list[Order], checkouts: list[Checkout]
) -> list[str]:
    found: set[str] = set()
    candidates: list[Any] = [profile.email, profile.phone, profile.first_name, profile.last_name]
    candidates += [profile.city, profile.external_reference, profile.saleor_user_id]
    if profile.first_name and profile.last_name:
        candidates.append(f"{profile.first_name} {profile.last_name}")
    candidates += [i.value for i in identities if not is_erased(i.value)]
    candidates += [o.user_email for o in orders] + [c.email for c in checkouts]
    candidates += [o.shipping_city for o in orders]
    for address in profile.addresses or []:
        if isinstance(address, dict):
            candidates += [address.get(key) for key in ADDRESS_KEYS]
    for candidate in candidates:
        if isinstance(candidate, str) and len(candidate.strip()) >= MIN_NEEDLE_LENGTH:
            found.add(candidate.strip().lower())
    return sorted(found)


async def erase_raw_events(
    session: AsyncSession, installation_id: int, keys: list[str], now: datetime
) -> int:
    """Raw webhook bodies naming the person are replaced; any not yet folded never will be
    (folding them would write the PII back)."""
    if not keys:
        return 0
    body = func.lower(InboxEvent.body)
    events = await _all(
        session,
        select(InboxEvent).where(
            InboxEvent.installation_id == installation_id,
            or_(*(body.contains(key, autoescape=True) for key in keys)),
        ),
    )
    for event in events:
        event.body = '{"erased": true}'
        event.last_error = None
        if event.status is not InboxStatus.DONE:
            event.status, event.folded_at, event.next_attempt_at = InboxStatus.DONE, now, None
    return len(events)


async def anonymize_profile(session: AsyncSession, profile: Profile, now: datetime) -> Erasure:
    """Erase the person's PII everywhere we keep it; anonymous statistics stay."""
    pid, installation_id = profile.id, profile.installation_id
    identities = await _all(session, select(Identity).where(Identity.profile_id == pid))
    orders = await _all(session, select(Order).where(Order.profile_id == pid))
    checkouts = await _all(session, select(Checkout).where(Checkout.profile_id == pid))
    fulfillments = await _all(session, select(Fulfillment).where(Fulfillment.profile_id == pid))
    entries = await _all(session, select(TimelineEntry).where(TimelineEntry.profile_id == pid))
    notes = await _all(session, select(Note).where(Note.profile_id == pid))
    needles = _needles(profile, identities, orders, checkouts)
    found = pattern(needles)
    # Other packages erase first, while the profile still names the person.
    scope = ErasureScope(installation_id, pid, needles, found, now)
    other = {name: await eraser(session, scope) for name, eraser in erasers()}
    # Identifiers, unlike names, are specific enough to pick out raw events.
    keys = [n for n in needles if "@" in n or n.lstrip("+").isdigit()]
    keys += [i.value.lower() for i in identities if i.kind is IdentityKind.SALEOR_USER]

    salt = await salt_for(session, installation_id)
    for identity in identities:
        if not is_erased(identity.value):
            identity.value = suppression_hash(salt, identity.kind, identity.value)
        if identity.kind is not IdentityKind.SALEOR_USER:
            identity.marketing_consent = ConsentState.DENIED
            identity.consent_updated_at = now
            identity.consent_source = "erased"
    for name in PERSONAL_PROFILE_FIELDS:
        setattr(profile, name, None)
    for order in orders:
        order.user_email = order.shipping_city = order.saleor_user_id = None
        order.referrer = scrub(order.referrer, found)
        order.saleor_metadata = scrub(order.saleor_metadata, found)
    for checkout in checkouts:
        checkout.email = checkout.saleor_user_id = None
        checkout.referrer = scrub(checkout.referrer, found)
        checkout.saleor_metadata = scrub(checkout.saleor_metadata, found)
    for fulfillment in fulfillments:
        # A tracking number finds the delivery address at the courier.
        fulfillment.tracking_number = ""
        fulfillment.lines = scrub(fulfillment.lines, found)
        fulfillment.saleor_metadata = scrub(fulfillment.saleor_metadata, found)
    for entry in entries:
        entry.summary = scrub(entry.summary, found)
        entry.data = scrub(entry.data, found)
        entry.subject_id = scrub(entry.subject_id, found)
        if scrub(entry.dedup_key, found) != entry.dedup_key:
            entry.dedup_key = f"erased:{entry.id}"
    for note in notes:
        note.text = ERASED
    inbox = await erase_raw_events(session, installation_id, sorted(set(keys)), now)
    await session.flush()
    await record(
        session,
        installation_id=installation_id,
        profile_id=pid,
        kind="customer_anonymized",
        occurred_at=now,
        dedup_key=f"anonymized:{pid}:{now.isoformat()}",
        summary="Personal data erased on request (GDPR); anonymous statistics kept",
        data={"identities": len(identities), "orders": len(orders), "notes": len(notes)},
    )
    return Erasure(
        identities=len(identities),
        orders=len(orders),
        checkouts=len(checkouts),
        fulfillments=len(fulfillments),
        timeline_entries=len(entries),
        notes=len(notes),
        inbox_events=inbox,
        other=other,
    )
