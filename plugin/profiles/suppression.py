"""Erased contacts stay on file as salted hashes, so no message ever goes to them again.

The salt is the shop's Saleor API URL: stable across SECRET_KEY rotations (a rotation must
not un-suppress anyone) and different per shop, so one hash list says nothing about another.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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


def suppression_hash(salt: str, kind: IdentityKind, value: str) -> str:
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
