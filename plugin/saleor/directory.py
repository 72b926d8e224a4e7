"""Which Saleor instances have installed the app, as the webhook receiver needs to know.

Every webhook names its Saleor (`Saleor-Api-Url`); looking the installation up in the
database on each one costs a round trip, so the receiver asks this directory, which keeps
what it read for a few seconds. Changes made by this process (install, uninstall, a
rotated key) take effect at once; changes made by another web process within the TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from plugin.db.engine import Database
from plugin.saleor.installations import get_by_api_url
from plugin.saleor.models import Installation, InstallationStatus


@dataclass(frozen=True)
class KnownInstallation:
    id: int
    saleor_api_url: str
    app_id: str
    jwks: dict[str, Any]
    active: bool

    @classmethod
    def of(cls, installation: Installation) -> KnownInstallation:
        return cls(
            id=installation.id,
            saleor_api_url=installation.saleor_api_url,
            app_id=installation.app_id,
            jwks=installation.jwks,
            active=installation.status is InstallationStatus.ACTIVE,
        )


class InstallationDirectory:
    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self._entries: dict[str, tuple[float, KnownInstallation]] = {}

    async def get(self, saleor_api_url: str) -> KnownInstallation | None:
        cached = self._entries.get(saleor_api_url)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with self.db.session() as session:
            installation = await get_by_api_url(session, saleor_api_url)
            await session.commit()
        if installation is None:
            self._entries.pop(saleor_api_url, None)
            return None
        known = KnownInstallation.of(installation)
        if self.ttl > 0:
            self._entries[saleor_api_url] = (time.monotonic(), known)
        return known

    def remember(self, installation: Installation) -> None:
        """This process just changed the installation: use the new state at once."""
        if self.ttl > 0:
            self._entries[installation.saleor_api_url] = (
                time.monotonic(),
                KnownInstallation.of(installation),
            )

    def forget(self, saleor_api_url: str) -> None:
        self._entries.pop(saleor_api_url, None)
