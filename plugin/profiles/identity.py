"""Identity resolution: which profile an event is about, creating or merging as needed.

Whose is a checkout or an order? The buyer's: the person whose e-mail is on it (checkout
`email`, order `userEmail`). Its Saleor `user` is who was logged in when it was made, which
is the buyer only when the e-mail is that user's own (`user.email`, or an address the
user's profile already holds — an earlier e-mail of the account). Otherwise the user only
*placed* it — a staff member taking a phone order, a customer sending a gift: the object
goes to the e-mail's profile, the user is recorded as "placed by" on the object (its
`saleor_user_id`) and on the timeline entry (`placed_by`), and nothing of the object
touches the user's own profile. A staff account (`user.isStaff`) is never a customer key:
its objects go by the e-mail on them only (a staff member buying for themselves is found
by their e-mail, like a guest). An address nobody holds yet counts as someone else's: an
account's former e-mail unknown to the CRM (an import from scratch) then gets its own
profile — a split the account's history can live with, where taking it for the account's
would merge a gift's recipient into the giver.

Rules, in the order they are applied:
1. The Saleor user id is the strongest key; the e-mail next to it joins that profile (for
   a checkout or order: when the e-mail is the user's own, see above).
2. Otherwise the normalised e-mail; a guest who later registers keeps one profile.
3. A phone (E.164) only decides when the event carries neither user id nor e-mail:
   families share phones more often than e-mail addresses.
4. Two profiles that belong to *different* Saleor users are never merged.
5. A purchase never changes the e-mail or the name of a profile with a Saleor account
   (`buyer_fields`): only the account's own data (CUSTOMER_* events, `user.email`) does.
   An address names whoever the parcel is for (a gift's recipient); a guest's purchase
   still names the guest, who has no account to say otherwise.

The webhook folds (`resolve`, one event at a time) and the import (`plugin.importer.people`,
a page at a time) decide with the same functions: `buyer_claims` and `choose`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.merge import merge_profiles
from plugin.profiles.models import Identity, IdentityKind, Profile


@dataclass(frozen=True)
class Claims:
    """The identifying keys an event carries, already normalised. For a checkout or an
    order, `account_email` and `staff` describe its Saleor user (`user.email`,
    `user.isStaff`), who may not be the buyer."""

    saleor_user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    account_email: str | None = None
    staff: bool = False

    @property
    def empty(self) -> bool:
        return not (self.saleor_user_id or self.email or self.phone)


# A profile as either resolver holds it: a `Profile` row or the import's `Person`.
P = TypeVar("P")


def _account(holder: Any) -> str | None:
    value = getattr(holder, "saleor_user_id", None)
    return str(value) if value else None


def placed_for_someone_else(claims: Claims, by_user: Any, by_email: Any) -> bool:
    """Is the object's Saleor user not its buyer? (`by_user`, `by_email`: the profiles
    holding the claims' user id and e-mail, or None.)"""
    if not claims.saleor_user_id:
        return False
    if claims.staff:
        return True
    if not claims.email or not claims.account_email or claims.email == claims.account_email:
        return False
    # Another address: the user's own only if their profile already holds it.
    return by_user is None or by_email is not by_user


def buyer_claims(claims: Claims, by_user: Any, by_email: Any) -> Claims:
    """The claims the object's buyer is found by: the same claims, or — when the user only
    placed it — the e-mail and phone on it without the user. A staff member's own e-mail
    comes without the phone: the address is the customer's they were serving."""
    if not placed_for_someone_else(claims, by_user, by_email):
        return claims
    own = claims.email == claims.account_email
    return Claims(email=claims.email, phone=None if own else claims.phone)


def choose(
    claims: Claims, by_user: P | None, by_email: P | None, by_phone: P | None
) -> tuple[P | None, P | None]:
    """The profile the (buyer's) claims name — None: a new one — and a second profile of
    the same person to merge into it, if any."""
    profile = by_user
    if by_email is not None:
        if profile is None:
            moved = claims.saleor_user_id and _account(by_email) not in (
                None,
                claims.saleor_user_id,
            )
            # The address moved to another Saleor user: a new person.
            profile = None if moved else by_email
        elif by_email is not profile and not _conflicting_users(profile, by_email):
            return profile, by_email
    return (profile if profile is not None else by_phone), None


def placed_by(claims: Claims, profile: Any) -> dict[str, Any] | None:
    """Who placed a checkout or order for its buyer (`profile`), when that is someone
    else: for the object's timeline entry."""
    if not claims.saleor_user_id or claims.saleor_user_id == _account(profile):
        return None
    if claims.email == claims.account_email:  # a staff member buying for themselves
        return None
    return {
        "saleor_user_id": claims.saleor_user_id,
        "email": claims.account_email,
        "staff": claims.staff,
    }


def with_placed_by(
    summary: str, data: dict[str, Any], placed: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """A purchase's timeline line and data, saying who placed it for the buyer."""
    if placed is None:
        return summary, data
    who = placed["email"] or placed["saleor_user_id"]
    role = "staff member" if placed["staff"] else "account"
    return f"{summary} (placed by {role} {who})", {**data, "placed_by": placed}


ACCOUNT_OWNED_FIELDS = frozenset({"first_name", "last_name"})


def buyer_fields(fields: dict[str, Any], claims: Claims, profile: Any) -> dict[str, Any]:
    """What a checkout or order may write on its buyer's profile: everything it gives but,
    on a profile with a Saleor account, the name (the account's own, from CUSTOMER_*
    events) and the e-mail unless it is the account's own (`user.email`)."""
    account = _account(profile)
    if account is None:
        return fields
    own_email = account == claims.saleor_user_id and claims.email == claims.account_email
    return {
        name: value
        for name, value in fields.items()
        if name not in ACCOUNT_OWNED_FIELDS and (own_email or name != "email")
    }


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


def _conflicting_users(a: Any, b: Any) -> bool:
    first, second = _account(a), _account(b)
    return bool(first and second and first != second)


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
    buyer = buyer_claims(claims, by_user, by_email)
    if buyer is not claims:
        claims, by_user = buyer, None
        if claims.empty:
            return None
    by_phone = None
    by_phone_looked_up = not claims.saleor_user_id and not claims.email
    if by_phone_looked_up:
        by_phone = await _owner(session, installation_id, IdentityKind.PHONE, claims.phone)

    profile, duplicate = choose(claims, by_user, by_email, by_phone)
    merged = duplicate is not None
    if profile is not None and duplicate is not None:
        profile = await merge_profiles(session, profile, duplicate, observed_at)
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
