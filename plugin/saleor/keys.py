"""Saleor's signing keys per installation, fetched again when a signature names a new one.

Saleor signs webhooks and dashboard tokens with one RSA key and publishes it at
`<origin>/.well-known/jwks.json`; changing `RSA_PRIVATE_KEY` replaces it at once. So a
signature whose `kid` the cached JWKS lacks may be the first one made with the new key:
the JWKS is fetched again (and kept when it changed), and:

- the kid is in the fresh JWKS: verify with it (also every later request with that kid,
  without another fetch);
- it is not, in a JWKS fetched after the request arrived: the kid is not Saleor's (401;
  remembered for a while, so repeating a forged kid costs no fetch);
- no fetch was allowed yet, or Saleor could not be reached: `KeysUnavailable`, answered
  503 so that Saleor delivers again (it never retries a 4xx).

Fetches per installation come from a small bucket (a burst, then one per interval), and
every fetch keeps what it got whoever caused it: a flood of forged kids spends the bucket,
but each fetch it causes after Saleor rotated brings the real key in, and a real delivery
refused meanwhile is redelivered by Saleor (10 s, 30 s, 70 s... later). Concurrent
requests share one fetch. A signature with a known kid never causes a fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.saleor.client import SaleorClient, SaleorError
from plugin.saleor.directory import InstallationDirectory, KnownInstallation
from plugin.saleor.jws import UnknownKeyError, holds_key, key_id
from plugin.saleor.models import Installation

logger = logging.getLogger(__name__)

JWKS = dict[str, Any]
Fetch = Callable[[KnownInstallation], Awaitable[JWKS]]
Store = Callable[[int, JWKS], Awaitable[None]]

# Fetches one installation may cause at once, then one more per interval.
REFETCH_BURST = 5
REFETCH_INTERVAL_SECONDS = 10.0
# How long a kid missing from a fresh JWKS is answered 401 without asking Saleor again.
ABSENT_KID_SECONDS = 300.0
ABSENT_KIDS_KEPT = 256


class KeysUnavailable(Exception):
    """The signature names a key the app cannot fetch now; retry in `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


@dataclass
class _Shop:
    tokens: float
    tokens_at: float
    # The last JWKS fetched, and when that fetch started.
    last: tuple[float, JWKS] | None = None
    inflight: tuple[float, asyncio.Task[JWKS]] | None = None
    absent: OrderedDict[str, float] = field(default_factory=OrderedDict)


class SigningKeys:
    def __init__(
        self,
        fetch: Fetch,
        store: Store,
        *,
        burst: int = REFETCH_BURST,
        interval_seconds: float = REFETCH_INTERVAL_SECONDS,
        absent_seconds: float = ABSENT_KID_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch, self.store = fetch, store
        self.burst, self.interval = burst, interval_seconds
        self.absent_seconds = absent_seconds
        self.clock = clock
        self._shops: dict[int, _Shop] = {}

    async def for_token(self, installation: KnownInstallation, token: str) -> JWKS:
        """The JWKS to verify `token` (a JWS or JWT) with. SignatureError when the token is
        malformed or names a key Saleor does not publish; KeysUnavailable when the key
        is unknown and Saleor cannot be asked now."""
        kid = key_id(token)
        if kid is None or holds_key(installation.jwks, kid):
            return installation.jwks
        shop = self._shop(installation.id)
        if shop.last is not None and holds_key(shop.last[1], kid):
            return shop.last[1]
        arrived = self.clock()
        absent_since = shop.absent.get(kid)
        if absent_since is not None and arrived - absent_since < self.absent_seconds:
            raise UnknownKeyError("the signing key is not one Saleor publishes")
        jwks = await self._fetched_since(shop, installation, arrived)
        if holds_key(jwks, kid):
            return jwks
        shop.absent[kid] = self.clock()
        shop.absent.move_to_end(kid)
        while len(shop.absent) > ABSENT_KIDS_KEPT:
            shop.absent.popitem(last=False)
        raise UnknownKeyError("the signing key is not one Saleor publishes")

    def _shop(self, installation_id: int) -> _Shop:
        shop = self._shops.get(installation_id)
        if shop is None:
            shop = self._shops[installation_id] = _Shop(float(self.burst), self.clock())
        return shop

    async def _fetched_since(
        self, shop: _Shop, installation: KnownInstallation, arrived: float
    ) -> JWKS:
        """A JWKS whose fetch started at or after `arrived` (shared with whoever else
        waits for one), or KeysUnavailable."""
        while True:
            if shop.last is not None and shop.last[0] >= arrived:
                return shop.last[1]
            if shop.inflight is not None and not shop.inflight[1].done():
                started, task = shop.inflight
                try:
                    return_value = await asyncio.shield(task)
                except SaleorError:
                    if started >= arrived:  # the reason is logged where the fetch failed
                        raise KeysUnavailable(
                            "Saleor's signing keys could not be fetched.",
                            math.ceil(self.interval),
                        ) from None
                    continue
                if started >= arrived:
                    return return_value
                continue
            wait = self._take_token(shop)
            if wait > 0:
                raise KeysUnavailable(
                    "The signature names a key the app does not know, and it may not "
                    "fetch Saleor's keys again yet.",
                    math.ceil(wait),
                )
            started = self.clock()
            task = asyncio.create_task(self._fetch(shop, installation, started))
            shop.inflight = (started, task)
            task.add_done_callback(_retrieve)

    def _take_token(self, shop: _Shop) -> float:
        """0 when a fetch may start now (and count it), else the seconds to wait."""
        now = self.clock()
        shop.tokens = min(float(self.burst), shop.tokens + (now - shop.tokens_at) / self.interval)
        shop.tokens_at = now
        if shop.tokens >= 1:
            shop.tokens -= 1
            return 0.0
        return max((1 - shop.tokens) * self.interval, 1.0)

    async def _fetch(self, shop: _Shop, installation: KnownInstallation, started: float) -> JWKS:
        try:
            jwks = await self.fetch(installation)
        except SaleorError as exc:
            logger.warning(
                "could not fetch Saleor's signing keys: %s",
                exc.message,
                extra={"installation_id": installation.id},
            )
            raise
        shop.last = (started, jwks)
        if jwks != installation.jwks:
            logger.info("Saleor's signing keys changed", extra={"installation_id": installation.id})
            try:
                await self.store(installation.id, jwks)
            except Exception:  # verifying with the fresh keys matters more than keeping them
                logger.exception("could not store Saleor's new signing keys")
        return jwks


def _retrieve(task: asyncio.Task[JWKS]) -> None:
    """Mark a failed fetch's exception as seen (its waiters may all have gone)."""
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()


def fetch_with(http: Callable[[], httpx.AsyncClient]) -> Fetch:
    """Fetch from the origin of the installation's stored Saleor API URL (never from a
    request header)."""

    async def fetch(installation: KnownInstallation) -> JWKS:
        return await SaleorClient(http(), installation.saleor_api_url).fetch_jwks()

    return fetch


def store_in(db: Database, directory: InstallationDirectory) -> Store:
    """Keep fetched keys on the installation, and in this process's directory at once."""

    async def store(installation_id: int, jwks: JWKS) -> None:
        async with unit_of_work(db) as session:
            installation = await session.get(Installation, installation_id)
            if installation is None:
                return
            installation.jwks = jwks
            await session.flush()
            directory.remember(installation)

    return store
