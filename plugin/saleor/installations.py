"""Installations: register (the app-sdk "APL" write), look-up by Saleor API URL, JWKS refresh."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.kit.crypto import SecretBox
from plugin.saleor.client import SaleorClient, SaleorError
from plugin.saleor.models import Installation, InstallationStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisterError(Exception):
    """A refusal the installer sees in the Saleor dashboard (`error.message`)."""

    status: int
    code: str
    message: str


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


async def verify_app(client: SaleorClient) -> VerifiedApp:
    """Prove the token with `{ app { id } }` and fetch the JWKS (no database involved)."""
    if not client.token:
        raise RegisterError(400, "MISSING_AUTH_TOKEN", "Missing auth token.")
    try:
        app_id = await client.app_id()
    except SaleorError as exc:
        raise RegisterError(
            401, "UNKNOWN_APP_ID", f"Could not verify the app token: {exc}"
        ) from exc
    if not app_id:
        raise RegisterError(
            401,
            "UNKNOWN_APP_ID",
            "Saleor did not confirm the app token (is the app activated after installation?).",
        )
    try:
        jwks = await client.fetch_jwks()
    except SaleorError as exc:
        raise RegisterError(401, "JWKS_NOT_AVAILABLE", exc.message) from exc
    return VerifiedApp(client.saleor_api_url, client.token, app_id, jwks)


async def save(
    session: AsyncSession,
    app: VerifiedApp,
    box: SecretBox,
    *,
    saleor_domain: str,
    saleor_version: str | None,
) -> Installation:
    """Store or refresh the installation. A re-install of the same Saleor replaces token,
    app id and keys and keeps all data."""
    installation = await get_by_api_url(session, app.saleor_api_url)
    now = utcnow()
    if installation is None:
        installation = Installation(saleor_api_url=app.saleor_api_url, installed_at=now)
        session.add(installation)
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
