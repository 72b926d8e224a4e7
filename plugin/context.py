"""What request handlers and jobs share: settings, database, HTTP client, secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
from plugin.saleor.directory import InstallationDirectory
from plugin.saleor.egress import SaleorEgress
from plugin.saleor.keys import SigningKeys, fetch_with, store_in
from plugin.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    box: SecretBox
    installations: InstallationDirectory = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    # Which Saleor URLs may be called, and the client for calls to Saleor instances.
    saleor_egress: SaleorEgress = field(init=False)
    saleor_http: httpx.AsyncClient = field(init=False)
    # Saleor's signing keys, fetched again (within a budget) when a signature names a new one.
    signing_keys: SigningKeys = field(init=False)

    def __post_init__(self) -> None:
        self.installations = InstallationDirectory(
            self.db, self.settings.installation_cache_seconds
        )
        self.saleor_egress = SaleorEgress(self.settings.allowed_saleor_urls)
        self.signing_keys = SigningKeys(
            fetch_with(lambda: self.saleor_http), store_in(self.db, self.installations)
        )

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        return cls(settings, Database(settings), SecretBox(settings.secret_key.get_secret_value()))

    async def open(self) -> None:
        timeout = httpx.Timeout(self.settings.http_timeout_seconds, connect=5.0)
        self.http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "saleor-crm"},
        )
        self.saleor_http = self.saleor_egress.client(timeout)

    async def close(self) -> None:
        await self.http.aclose()
        await self.saleor_http.aclose()
        await self.db.dispose()
