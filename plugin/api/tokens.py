"""Developer API tokens: `crm_<random>`, shown once, looked up by SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.api.models import ApiToken

TOKEN_PREFIX = "crm_"
# Writing last_used_at on every request would turn reads into writes; a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    row: ApiToken


async def issue(
    session: AsyncSession,
    *,
    installation_id: int,
    name: str,
    permissions: list[str],
    created_by_user_id: str | None,
    created_by_email: str | None,
    now: datetime,
) -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        installation_id=installation_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        permissions=sorted(set(permissions)),
        created_by_user_id=created_by_user_id,
        created_by_email=created_by_email,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return IssuedToken(token, row)


async def find_active(session: AsyncSession, token: str) -> ApiToken | None:
    return await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )


def touch_due(row: ApiToken, now: datetime) -> bool:
    return row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION


async def touch(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
