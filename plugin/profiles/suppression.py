"""Erased contacts stay on file as salted hashes, so no message ever goes to them again.

The salt is the shop's Saleor API URL: stable across SECRET_KEY rotations (a rotation must
not un-suppress anyone) and different per shop, so one hash list says nothing about another.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.importer import pg_bulk
from plugin.importer.bulk import any_of
from plugin.profiles.models import Identity, IdentityKind
from plugin.saleor.models import Installation
from plugin.saleor.payloads import normalise_email, normalise_phone

PREFIX = "erased:sha256:"


def normalised(kind: IdentityKind, value: str) -> str:
    """The form identities store, so a hash of what a sender holds matches ours."""
    if kind is IdentityKind.EMAIL:
        return normalise_email(value) or value.strip().lower()
    if kind is IdentityKind.PHONE:
        return normalise_phone(value) or value.strip()
    return value.strip()


@functools.lru_cache(maxsize=65_536)
def suppression_hash(salt: str, kind: IdentityKind, value: str) -> str:
    """Cached: an import checks every contact of every object, and a customer's recur on
    each of their orders."""
    digest = hashlib.sha256(f"{salt}\x00{kind.value}\x00{normalised(kind, value)}".encode())
    return PREFIX + digest.hexdigest()


def is_erased(value: str) -> bool:
    return value.startswith(PREFIX)


async def salt_for(session: AsyncSession, installation_id: int) -> str:
    installation = await session.get(Installation, installation_id)
    if installation is None:
        raise LookupError(f"no installation {installation_id}")
    return installation.saleor_api_url


async def is_suppressed(
    session: AsyncSession, installation_id: int, kind: IdentityKind, value: str
) -> bool:
    """Was this address or number erased? Senders must check before every message."""
    hashed = suppression_hash(await salt_for(session, installation_id), kind, value)
    found = await session.scalar(
        select(Identity.id).where(
            Identity.installation_id == installation_id,
            Identity.kind == kind,
            Identity.value == hashed,
        )
    )
    return found is not None


Contact = tuple[IdentityKind, str]


def person_contacts(user: Any, *emails: Any) -> list[Contact]:
    """The keys an order, checkout or account names a person by: its Saleor user and every
    e-mail it carries (the order's own and the account's). Phones are left out: families
    share them, and one erased member must not silence the others' orders."""
    found: list[Contact] = []
    if isinstance(user, dict) and user.get("id"):
        found.append((IdentityKind.SALEOR_USER, str(user["id"])))
    candidates = [*emails, user.get("email") if isinstance(user, dict) else None]
    for email in candidates:
        if isinstance(email, str) and email.strip():
            found.append((IdentityKind.EMAIL, email))
    return found


ErasedKeys = frozenset[tuple[IdentityKind, str]]


def erased_keys(salt: str, contacts: Iterable[Contact]) -> ErasedKeys:
    """The (kind, hash) pairs an erased person with these contacts is on file under."""
    return frozenset((kind, suppression_hash(salt, kind, value)) for kind, value in contacts)


async def erased_among(
    session: AsyncSession, installation_id: int, groups: Sequence[Iterable[Contact]]
) -> list[bool]:
    """For each group of contacts (one object each): does it name an erased person? One
    query for all groups, so a page of an import costs what one webhook does."""
    salt = await salt_for(session, installation_id)
    return await erased_among_keys(
        session, installation_id, [erased_keys(salt, group) for group in groups]
    )


async def erased_among_keys(
    session: AsyncSession, installation_id: int, hashes: Sequence[ErasedKeys]
) -> list[bool]:
    """`erased_among` for contacts already hashed (`erased_keys`, with the shop's salt)."""
    wanted = sorted(set().union(*hashes)) if hashes else []
    if not wanted:
        return [False] * len(hashes)
    erased = await _stored(session, installation_id, wanted)
    return [bool(h & erased) for h in hashes]


async def _stored(
    session: AsyncSession, installation_id: int, pairs: list[tuple[IdentityKind, str]]
) -> set[tuple[IdentityKind, str]]:
    """Which (kind, hash) pairs are on file: one probe of the (installation, kind, value)
    index per pair (on PostgreSQL the pairs travel as two arrays)."""
    if session.get_bind().dialect.name == "postgresql":
        rows = await pg_bulk.fetch(
            session,
            "SELECT kind, value FROM identities WHERE installation_id = $1 AND (kind, value) IN "
            "(SELECT * FROM unnest($2::varchar[], $3::varchar[]))",
            installation_id,
            [kind.name for kind, _ in pairs],
            [value for _, value in pairs],
        )
        return {(IdentityKind[row["kind"]], row["value"]) for row in rows}
    found = await session.execute(
        select(Identity.kind, Identity.value).where(
            Identity.installation_id == installation_id,
            Identity.kind.in_(sorted({kind for kind, _ in pairs})),
            any_of(session, Identity.value, sorted({value for _, value in pairs})),
        )
    )
    return {(IdentityKind(kind), value) for kind, value in found}


async def names_erased_person(
    session: AsyncSession, installation_id: int, contacts: Iterable[Contact]
) -> bool:
    """Does this webhook's object name an erased person? Folding it would write them back
    (a fresh guest profile with their e-mail)."""
    return (await erased_among(session, installation_id, [list(contacts)]))[0]
