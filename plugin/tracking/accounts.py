"""A shop's carrier accounts: credentials (encrypted), API address, limits; and the
adapter built from one."""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.kit.crypto import SecretBox
from plugin.saleor.egress import Egress, EgressRefused, Unresolvable
from plugin.tracking.carriers.aftership import AfterShipAdapter
from plugin.tracking.carriers.base import AccountConfig, Adapter
from plugin.tracking.carriers.cdek import CdekAdapter
from plugin.tracking.carriers.manual import ManualAdapter
from plugin.tracking.carriers.russian_post import RussianPostAdapter
from plugin.tracking.models import CarrierAccount

logger = logging.getLogger(__name__)

BOX_PURPOSE = "carrier-credentials"
# What staff are told (what the name resolved to is logged, never answered).
REFUSED_BASE_URL = (
    "This base URL may not be called: it must be allowed by ALLOWED_CARRIER_URLS and its "
    "host must resolve to public addresses only (a loopback, private or link-local host "
    "must be named in ALLOWED_CARRIER_URLS)."
)

DEFAULT_URLS = {
    "aftership": "https://api.aftership.com",
    "cdek": "https://api.cdek.ru/v2",
    "russian_post": "https://tracking.russianpost.ru/rtm34",
}
REQUIRED = {
    "aftership": ("api_key",),
    "cdek": ("client_id", "client_secret"),
    "russian_post": ("login", "password"),
}
OPTIONAL = {"aftership": ("webhook_secret",)}


def box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key, purpose=BOX_PURPOSE)


def validate(
    carrier: str, credentials: dict[str, str], base_url: str | None, max_concurrency: int
) -> str:
    """The account's base URL; raises ValueError with a message staff can act on."""
    if carrier not in REQUIRED:
        raise ValueError(f"carrier {carrier!r} has no API account; one of {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED[carrier] if not str(credentials.get(k) or "").strip()]
    if missing:
        raise ValueError(f"{carrier} needs {', '.join(missing)}")
    unknown = set(credentials) - set(REQUIRED[carrier]) - set(OPTIONAL.get(carrier, ()))
    if unknown:
        raise ValueError(f"{carrier} has no credential named {', '.join(sorted(unknown))}")
    url = (base_url or DEFAULT_URLS[carrier]).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if not 1 <= max_concurrency <= 64:
        raise ValueError("max concurrency is between 1 and 64")
    return url


async def check_base_url(egress: Egress, url: str) -> None:
    """Refuse, before any connection, a base URL staff give that the carrier egress policy
    would refuse when it is called (which it checks again then: DNS may change)."""
    try:
        await egress.check(url)
    except (EgressRefused, Unresolvable, ValueError) as exc:
        logger.warning("carrier base URL refused: %s", exc)
        raise ValueError(REFUSED_BASE_URL) from None


async def configure(
    session: AsyncSession,
    secrets_box: SecretBox,
    *,
    installation_id: int,
    carrier: str,
    credentials: dict[str, str],
    base_url: str | None = None,
    max_concurrency: int = 4,
    requests_per_second: float = 10.0,
) -> CarrierAccount:
    """Create or replace the shop's account for a carrier (the webhook key is kept)."""
    url = validate(carrier, credentials, base_url, max_concurrency)
    if not 0 < requests_per_second <= 1000:
        raise ValueError("requests per second is above 0 and at most 1000")
    account = await get_account(session, installation_id, carrier)
    if account is None:
        account = CarrierAccount(
            installation_id=installation_id, carrier=carrier, webhook_key=secrets.token_urlsafe(24)
        )
        session.add(account)
    account.base_url = url
    account.credentials_encrypted = secrets_box.encrypt(json.dumps(credentials))
    account.max_concurrency = max_concurrency
    account.requests_per_second = requests_per_second
    account.enabled = True
    account.blocked_until = None
    await session.flush()
    return account


async def get_account(
    session: AsyncSession, installation_id: int, carrier: str
) -> CarrierAccount | None:
    found: CarrierAccount | None = await session.scalar(
        select(CarrierAccount).where(
            CarrierAccount.installation_id == installation_id, CarrierAccount.carrier == carrier
        )
    )
    return found


def adapter_for(
    account: CarrierAccount | None, carrier: str, http: httpx.AsyncClient, secrets_box: SecretBox
) -> Adapter:
    if carrier == "manual" or account is None:
        return ManualAdapter()
    config = AccountConfig(
        account.base_url, json.loads(secrets_box.decrypt(account.credentials_encrypted))
    )
    if carrier == "aftership":
        return AfterShipAdapter(http, config)
    if carrier == "cdek":
        return CdekAdapter(http, config)
    if carrier == "russian_post":
        return RussianPostAdapter(http, config)
    return ManualAdapter()
