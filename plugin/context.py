"""What request handlers and jobs share: settings, database, HTTP client, secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from plugin.db.engine import Database
from plugin.kit.crypto import SecretBox
from plugin.saleor.directory import InstallationDirectory
from plugin.saleor.egress import CarrierEgress, SaleorEgress
from plugin.saleor.keys import SigningKeys, fetch_with, store_in
from plugin.settings import Settings


def saleor_timeout(settings: Settings, factor: float = 1.0) -> httpx.Timeout:
    """Time allowed for a call to Saleor (`factor` for long reads such as the import)."""
    return httpx.Timeout(settings.http_timeout_seconds * factor, connect=5.0)


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
    # Which carrier API URLs may be called (staff choose an account's base URL).
    carrier_egress: CarrierEgress = field(init=False)
    # Saleor's signing keys, fetched again (within a budget) when a signature names a new one.
    signing_keys: SigningKeys = field(init=False)

    def __post_init__(self) -> None:
        self.installations = InstallationDirectory(
            self.db, self.settings.installation_cache_seconds
        )
        self.saleor_egress = SaleorEgress(self.settings.allowed_saleor_urls)
        self.carrier_egress = CarrierEgress(self.settings.allowed_carrier_urls)
        self.signing_keys = SigningKeys(
            fetch_with(lambda: self.saleor_http), store_in(self.db, self.installations)
        )

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        return cls(settings, Database(settings), SecretBox(settings.secret_key.get_secret_value()))

    def saleor_client(self, factor: float = 1.0) -> httpx.AsyncClient:
        """A client of its own under the egress policy, for a job: a worker's context
        opens no `saleor_http` (only the web app does), and a job's client closes with it.
        Every call to a Saleor goes through this policy, never through a plain client:
        the stored shop name may resolve to an internal address since it installed."""
        return self.saleor_egress.client(saleor_timeout(self.settings, factor))

    def carrier_client(self) -> httpx.AsyncClient:
        """The carriers' client (their APIs, not Saleor), under the carrier egress policy:
        a stored base URL may resolve to an internal address since staff saved it."""
        timeout = httpx.Timeout(self.settings.http_timeout_seconds, connect=5.0)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        return self.carrier_egress.client(timeout, limits)

    async def open(self) -> None:
        timeout = saleor_timeout(self.settings)
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
