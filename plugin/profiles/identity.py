"""Identity resolution: which profile an event is about, creating or merging as needed.

Rules, in the order they are applied:
1. The Saleor user id is the strongest key; an e-mail next to it joins that profile.
2. Otherwise the normalised e-mail; a guest who later registers keeps one profile.
3. A phone (E.164) only decides when the event carries neither user id nor e-mail:
   families share phones more often than e-mail addresses.
4. Two profiles that belong to *different* Saleor users are never merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.merge import merge_profiles
from plugin.profiles.models import Identity, IdentityKind, Profile


@dataclass(frozen=True)
class Claims:
    """The identifying keys an event carries, already normalised."""

    saleor_user_id: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.saleor_user_id or self.email or self.phone)


async def _owner(
    session: AsyncSession, installation_id: int, kind: IdentityKind, value: str | None
) -> Profile | None:
    if not value:
        return None
    identity = await session.scalar(
        select(Identity).where(
            Identity.installation_id == installation_id,
            Identity.kind == kind,
            Identity.value == value,
        )
    )
    if identity is None:
        return None
    return await session.get(Profile, identity.profile_id)


async def attach(
    session: AsyncSession,
    profile: Profile,
    kind: IdentityKind,
    value: str | None,
    *,
    known_owner: Profile | None = None,
    looked_up: bool = False,
) -> None:
    """Give `profile` the identity unless some profile already holds it. `looked_up`:
    the caller just searched for the owner (`known_owner`), so no second query."""
    if not value:
        return
    if looked_up:
        existing = known_owner.id if known_owner is not None else None
    else:
        existing = await session.scalar(
            select(Identity.id).where(
                Identity.installation_id == profile.installation_id,
                Identity.kind == kind,
                Identity.value == value,
            )
        )
    if existing is None:
        session.add(
            Identity(
                installation_id=profile.installation_id,
                profile_id=profile.id,
                kind=kind,
                value=value,
            )
        )
        await session.flush()


def _conflicting_users(a: Profile, b: Profile) -> bool:
    return bool(a.saleor_user_id and b.saleor_user_id and a.saleor_user_id != b.saleor_user_id)


async def resolve(
    session: AsyncSession, installation_id: int, claims: Claims, observed_at: datetime
) -> Profile | None:
    """The profile these claims name, after creating it or merging duplicates; None if anonymous."""
    if claims.empty:
        return None
    by_user = await _owner(
        session, installation_id, IdentityKind.SALEOR_USER, claims.saleor_user_id
    )
    by_email = await _owner(session, installation_id, IdentityKind.EMAIL, claims.email)
    by_phone = None
    by_phone_looked_up = not claims.saleor_user_id and not claims.email
    if by_phone_looked_up:
        by_phone = await _owner(session, installation_id, IdentityKind.PHONE, claims.phone)
    merged = False

    profile = by_user
    if by_email is not None:
        if profile is None:
            if claims.saleor_user_id and by_email.saleor_user_id not in (
                None,
                claims.saleor_user_id,
            ):
                profile = None  # the address moved to another Saleor user: a new person
            else:
                profile = by_email
        elif by_email.id != profile.id and not _conflicting_users(profile, by_email):
            profile = await merge_profiles(session, profile, by_email, observed_at)
            merged = True
    if profile is None:
        profile = by_phone
    if profile is None:
        profile = Profile(installation_id=installation_id)
        session.add(profile)
        await session.flush()

    if claims.saleor_user_id and not profile.saleor_user_id:
        profile.saleor_user_id = claims.saleor_user_id
    # Owners looked up above are still current unless a merge moved identities.
    fresh = not merged
    await attach(
        session,
        profile,
        IdentityKind.SALEOR_USER,
        claims.saleor_user_id,
        known_owner=by_user,
        looked_up=fresh,
    )
    await attach(
        session, profile, IdentityKind.EMAIL, claims.email, known_owner=by_email, looked_up=fresh
    )
    await attach(
        session,
        profile,
        IdentityKind.PHONE,
        claims.phone,
        known_owner=by_phone,
        looked_up=fresh and by_phone_looked_up,
    )
    return profile
