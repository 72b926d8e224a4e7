"""Marketing consent, kept per identity (this e-mail, this phone) with time and source.

Saleor has no consent field; storefronts commonly keep it in metadata. The keys read here
are documented in the README (`marketing_consent_email`, `marketing_consent_sms`, values
`true`/`false`). The newest statement wins, by Saleor's timestamps.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile

CONSENT_KEYS = {
    "marketing_consent_email": IdentityKind.EMAIL,
    "marketing_consent_sms": IdentityKind.PHONE,
}
TRUE_VALUES = {"true", "1", "yes", "granted"}
FALSE_VALUES = {"false", "0", "no", "denied"}


def parse_consent(raw: str) -> ConsentState | None:
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return ConsentState.GRANTED
    if value in FALSE_VALUES:
        return ConsentState.DENIED
    return None


def set_consent(identity: Identity, state: ConsentState, at: datetime, source: str) -> bool:
    if identity.consent_updated_at is not None and identity.consent_updated_at > at:
        return False
    identity.marketing_consent = state
    identity.consent_updated_at = at
    identity.consent_source = source
    return True


async def apply_consent_from_metadata(
    session: AsyncSession,
    profile: Profile,
    meta: dict[str, str],
    at: datetime,
    source: str,
    *,
    email: str | None,
    phone: str | None,
) -> None:
    """Consent stated in a snapshot applies only to the contacts of *that* snapshot."""
    for key, kind in CONSENT_KEYS.items():
        if key not in meta or (state := parse_consent(meta[key])) is None:
            continue
        value = email if kind is IdentityKind.EMAIL else phone
        if not value:
            continue
        identity = await session.scalar(
            select(Identity).where(
                Identity.installation_id == profile.installation_id,
                Identity.kind == kind,
                Identity.value == value,
                Identity.profile_id == profile.id,
            )
        )
        if identity is not None:
            set_consent(identity, state, at, f"{source}:{key}")
