"""Installations: register (the app-sdk "APL" write), look-up by Saleor API URL, JWKS refresh."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
from plugin.saleor.client import SaleorClient, SaleorError
from plugin.saleor.models import Installation, InstallationStatus

logger = logging.getLogger(__name__)


class RegisterError(Exception):
    """A refusal the installer sees in the Saleor dashboard (`error.message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def get_by_api_url(session: AsyncSession, saleor_api_url: str) -> Installation | None:
    return await session.scalar(
        select(Installation).where(Installation.saleor_api_url == saleor_api_url)
    )


@dataclass(frozen=True)
class VerifiedApp:
    saleor_api_url: str
    token: str
    app_id: str
    jwks: dict[str, Any]


# What the installer sees when the token could not be proven. One message whatever went
# wrong (no address, refused, timed out, not Saleor, unknown token): `/api/register` is
# unauthenticated, and telling those apart would make it a probe of the app's network.
NOT_CONFIRMED = (
    "Saleor did not confirm the app token (is the Saleor instance reachable from the app, "
    "and the app activated after installation?)."
)


async def verify_app(client: SaleorClient, identifier: str) -> VerifiedApp:
    """Prove the token with `{ app { id identifier } }`: it must be the token of THIS app
    (`identifier` = the manifest's `id`, unique among a Saleor's apps), not of any other
    app installed in the same Saleor; then fetch the JWKS (no database involved)."""
    if not client.token:
        raise RegisterError(400, "MISSING_AUTH_TOKEN", "Missing auth token.")
    where = {"saleor_api_url": client.saleor_api_url}
    try:
        app = await client.app_identity()
    except SaleorError as exc:
        logger.warning("register: the token check failed: %s", exc.message, extra=where)
        app = None
    if app is None:
        raise RegisterError(401, "UNKNOWN_APP_ID", NOT_CONFIRMED)
    if app.identifier != identifier:
        logger.warning(
            "register: the token belongs to app %r (identifier %r), not to %r",
            app.id,
            app.identifier,
            identifier,
            extra=where,
        )
        raise RegisterError(
            401,
            "FOREIGN_APP",
            f"The token belongs to another app of this Saleor, not to {identifier!r}.",
        )
    try:
        jwks = await client.fetch_jwks()
    except SaleorError as exc:
        logger.warning("register: no JWKS: %s", exc.message, extra=where)
        raise RegisterError(
            401, "JWKS_NOT_AVAILABLE", "Could not fetch the Saleor instance's signing keys."
        ) from None
    return VerifiedApp(client.saleor_api_url, client.token, app.id, jwks)


async def gone_app_id(
    db: Database, box: SecretBox, http: httpx.AsyncClient, app: VerifiedApp
) -> str | None:
    """The app id of the active installation `app` would replace, when Saleor refuses
    that installation's stored token (its app was deleted, the APP_DELETED event lost):
    only then may a re-install swap the app of an active installation. None when there
    is nothing to replace or the old app may still be alive (it answered, or Saleor could
    not be asked): the takeover guard in `save` then holds."""
    async with db.session() as session:
        current = await get_by_api_url(session, app.saleor_api_url)
    if (
        current is None
        or current.status is not InstallationStatus.ACTIVE
        or current.app_id == app.app_id
    ):
        return None
    try:
        token = box.decrypt(current.token_encrypted)
    except ValueError:
        return None
    if not await SaleorClient(http, app.saleor_api_url, token).token_refused():
        return None
    logger.warning(
        "register: Saleor refuses the stored token of app %r; its APP_DELETED was lost",
        current.app_id,
        extra={"installation_id": current.id},
    )
    return current.app_id


async def save(
    session: AsyncSession,
    app: VerifiedApp,
    box: SecretBox,
    *,
    saleor_domain: str,
    saleor_version: str | None,
    replaces_app_id: str | None = None,
) -> Installation:
    """Store or refresh the installation. A new token of the same app, or a re-install
    after an uninstall, replaces token, app id and keys and keeps all data; an active
    installation never changes app (that would hand the shop to whoever holds the other
    app's token): RegisterError 409, nothing written. The one exception is
    `replaces_app_id`, an app Saleor no longer knows (`gone_app_id`): a re-install whose
    uninstall event was lost takes its place."""
    installation = await session.scalar(
        select(Installation)
        .where(Installation.saleor_api_url == app.saleor_api_url)
        .with_for_update()
    )
    now = utcnow()
    if installation is None:
        installation = Installation(saleor_api_url=app.saleor_api_url, installed_at=now)
        session.add(installation)
    elif installation.status is InstallationStatus.ACTIVE and installation.app_id not in (
        app.app_id,
        replaces_app_id,
    ):
        logger.warning(
            "register: refused app %r for the active installation of app %r",
            app.app_id,
            installation.app_id,
            extra={"installation_id": installation.id},
        )
        raise RegisterError(
            409,
            "ALREADY_INSTALLED",
            "The app is already installed in this Saleor instance (as another app); "
            "uninstall that one in the Saleor dashboard first.",
        )
    installation.saleor_domain = saleor_domain
    installation.app_id = app.app_id
    installation.token_encrypted = box.encrypt(app.token)
    installation.jwks = app.jwks
    installation.saleor_version = saleor_version
    installation.status = InstallationStatus.ACTIVE
    installation.installed_at = now
    installation.removed_at = None
    await session.flush()
    logger.info("installation registered", extra={"installation_id": installation.id})
    return installation


async def mark_removed(session: AsyncSession, installation: Installation) -> None:
    installation.status = InstallationStatus.REMOVED
    installation.removed_at = utcnow()
    await session.flush()


async def uninstall(
    session: AsyncSession, installation_id: int, event: dict[str, Any]
) -> Installation | None:
    """APP_DELETED: mark the installation removed (its data stays); None when the event
    names another app id (an old install's late event after a re-install)."""
    installation = await session.get(Installation, installation_id)
    app = event.get("app") or {}
    if installation is None:
        return None
    if app.get("id") and app["id"] != installation.app_id:
        logger.warning("APP_DELETED for another app id; ignored")
        return None
    if installation.status is not InstallationStatus.REMOVED:
        await mark_removed(session, installation)
        # Imported here: the lifecycle reaches into domain packages that fold through us.
        from plugin.lifecycle.uninstall import stop_installation

        await stop_installation(session, installation.id)
    return installation


async def fold_app_event(
    session: AsyncSession, installation_id: int, event_type: str, event: dict[str, Any]
) -> list[Any]:
    """The receiver already applied APP_DELETED; folding it again is a harmless no-op."""
    if event_type == "app_deleted":
        await uninstall(session, installation_id, event)
    return []
