"""Folding CUSTOMER_* events: the Saleor account's own view of the person."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.consent import apply_consent_from_metadata
from plugin.profiles.contacts import address_summary, claims_for, language, location_fields
from plugin.profiles.fields import apply_fields
from plugin.profiles.identity import resolve
from plugin.profiles.models import IdentityKind, Profile
from plugin.profiles.privacy import anonymize_profile, erase_raw_events
from plugin.profiles.suppression import is_suppressed
from plugin.saleor.payloads import (
    JSON,
    metadata_dict,
    parse_datetime,
    require,
    require_datetime,
)
from plugin.timeline.keys import entry_key
from plugin.timeline.service import record

EVENT_TITLES = {
    "customer_created": "Account created",
    "customer_updated": "Account updated",
    "customer_metadata_updated": "Account metadata updated",
    "customer_deleted": "Account deleted in Saleor",
}


def _customer_fields(user: JSON) -> dict[str, object]:
    shipping = user.get("defaultShippingAddress") or user.get("defaultBillingAddress")
    addresses = [address_summary(a) for a in user.get("addresses") or [] if isinstance(a, dict)]
    return {
        "email": claims_for(None, user.get("email")).email,
        "first_name": user.get("firstName") or None,
        "last_name": user.get("lastName") or None,
        "language": language(user.get("languageCode")),
        "note": user.get("note"),
        "external_reference": user.get("externalReference"),
        "is_active": user.get("isActive"),
        "is_confirmed": user.get("isConfirmed"),
        "date_joined": parse_datetime(user.get("dateJoined")),
        "last_login": parse_datetime(user.get("lastLogin")),
        "addresses": addresses,
        "saleor_metadata": metadata_dict(user.get("metadata")),
        **location_fields(shipping),
    }


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


async def fold_customer_event(
    session: AsyncSession, installation_id: int, event_type: str, event: JSON
) -> list[Profile]:
    user = require(event, "user")
    require(user, "id")
    issued_at = require_datetime(event.get("issuedAt"), "issuedAt")
    updated_at = parse_datetime(user.get("updatedAt")) or issued_at
    if await is_suppressed(session, installation_id, IdentityKind.SALEOR_USER, str(user["id"])):
        # The account was deleted and its person erased: a late (or repeated) event about
        # it must not write them back, nor keep them in the raw inbox.
        keys = [
            str(user["id"]).lower(),
            *([str(user["email"]).lower()] if user.get("email") else []),
        ]
        await erase_raw_events(session, installation_id, keys, issued_at)
        return []
    claims = claims_for(
        user,
        user.get("email"),
        user.get("defaultShippingAddress"),
        user.get("defaultBillingAddress"),
    )
    profile = await resolve(session, installation_id, claims, updated_at)
    if profile is None:  # pragma: no cover - a user always has an id
        return []

    if event_type == "customer_deleted":
        profile.saleor_deleted_at = _later(profile.saleor_deleted_at, issued_at)
    elif profile.saleor_deleted_at is None or updated_at >= profile.saleor_deleted_at:
        # A late update from before the deletion must not bring the account back.
        apply_fields(profile, updated_at, _customer_fields(user))
        profile.customer_updated_at = _later(profile.customer_updated_at, updated_at)
        await apply_consent_from_metadata(
            session,
            profile,
            metadata_dict(user.get("metadata")),
            updated_at,
            "saleor_user",
            email=claims.email,
            phone=claims.phone,
        )
    await session.flush()

    await record(
        session,
        installation_id=installation_id,
        profile_id=profile.id,
        kind=event_type,
        occurred_at=issued_at,
        subject_type="customer",
        subject_id=str(user["id"]),
        summary=EVENT_TITLES.get(event_type, "Account event"),
        data={"email": claims.email},
        dedup_key=entry_key(event_type, str(user["id"]), updated_at),
    )
    if event_type == "customer_deleted":
        # Saleor deleted the account: the person's data goes with it (anonymous figures
        # stay), their contacts stay only as hashes so no message reaches them again.
        await anonymize_profile(session, profile, issued_at)
    return [profile]
