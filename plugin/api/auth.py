"""Who is calling: a Saleor dashboard token (PLATFORM.md §6) or a developer API token.

Dashboard tokens are RS256 JWTs verified with the installation's stored JWKS, fetched
again from `<origin>/.well-known/jwks.json` when the token names a key the JWKS lacks
(Saleor rotated it; `plugin.saleor.keys`): UNAVAILABLE, which the dashboard retries, when
that fetch is not allowed yet or Saleor cannot be reached. `iss` must be the
installation's Saleor API URL, `app` its app id, and `exp` in the future.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.api import tokens
from plugin.api.errors import Unauthenticated, Unavailable
from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.kit.after_commit import unit_of_work
from plugin.saleor.directory import KnownInstallation
from plugin.saleor.jws import SignatureError, verify_jwt
from plugin.saleor.keys import KeysUnavailable
from plugin.saleor.models import Installation, InstallationStatus


@dataclass(frozen=True)
class Viewer:
    installation_id: int
    saleor_api_url: str
    permissions: frozenset[str]
    user_id: str | None = None
    email: str | None = None
    token_id: int | None = None  # set for developer API tokens

    def has(self, *permissions: str) -> bool:
        return all(p in self.permissions for p in permissions)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <token>` or app-sdk's `authorization-bearer: <token>`."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("authorization-bearer", "").strip() or None


async def authenticate(app: AppContext, headers: Mapping[str, str]) -> Viewer | None:
    """The viewer, None when no token was sent; Unauthenticated when a token is bad."""
    token = bearer_token(headers)
    if token is None:
        return None
    api_url = headers.get("saleor-api-url", "").strip()
    if token.startswith(tokens.TOKEN_PREFIX):
        return await _api_token(app, token, api_url)
    return await _dashboard_token(app, token, api_url)


async def _api_token(app: AppContext, token: str, api_url: str) -> Viewer:
    # Its own short transaction: the request's session has not started yet, and on SQLite
    # a second writer would wait for the request's lock.
    async with unit_of_work(app.db) as session:
        row = await tokens.find_active(session, token)
        installation = await session.get(Installation, row.installation_id) if row else None
        active = installation is not None and installation.status is InstallationStatus.ACTIVE
        if row is None or installation is None or not active:
            raise Unauthenticated("Unknown or revoked API token.")
        if api_url and api_url != installation.saleor_api_url:
            raise Unauthenticated("The API token belongs to another Saleor instance.")
        now = utcnow()
        if tokens.touch_due(row, now):
            await tokens.touch(session, row.id, now)
    return Viewer(
        installation_id=installation.id,
        saleor_api_url=installation.saleor_api_url,
        permissions=frozenset(row.permissions),
        token_id=row.id,
    )


async def _dashboard_token(app: AppContext, token: str, api_url: str) -> Viewer:
    if not api_url:
        raise Unauthenticated("Missing saleor-api-url header.")
    installation = await app.installations.get(api_url)
    if installation is None or not installation.active:
        raise Unauthenticated("This Saleor instance has not installed the app.")
    claims = await _verified_claims(app, installation, token)
    if claims.get("app") != installation.app_id:
        raise Unauthenticated("The token was issued to another app.")
    permissions = claims.get("user_permissions")
    if not isinstance(permissions, list):
        raise Unauthenticated("The token carries no user_permissions.")
    user_id, email = claims.get("user_id"), claims.get("email")
    return Viewer(
        installation_id=installation.id,
        saleor_api_url=installation.saleor_api_url,
        permissions=frozenset(p for p in permissions if isinstance(p, str)),
        user_id=user_id if isinstance(user_id, str) else None,
        email=email if isinstance(email, str) else None,
    )


async def _verified_claims(
    app: AppContext, installation: KnownInstallation, token: str
) -> dict[str, Any]:
    try:
        jwks = await app.signing_keys.for_token(installation, token)
        return verify_jwt(token, jwks, issuer=installation.saleor_api_url)
    except KeysUnavailable as unavailable:
        raise Unavailable(
            f"{unavailable.message} Retry in {unavailable.retry_after} s.",
            retryAfter=unavailable.retry_after,
        ) from None
    except SignatureError as exc:
        raise Unauthenticated(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    message = str(exc)
    return "Invalid token: " + message.removeprefix("invalid token: ")
