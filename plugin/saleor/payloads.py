"""Reading Saleor webhook payloads: timestamps, money, metadata, addresses, contacts."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

from plugin.db.base import ZERO

JSON = dict[str, Any]

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class PayloadError(ValueError):
    """A signed payload the CRM cannot fold: kept in the inbox as failed, never dropped."""


def typename_to_event(typename: str) -> str:
    """`OrderFullyPaid` → `order_fully_paid` (the `Saleor-Event` header's spelling)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", typename).lower()


def parse_datetime(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError(f"bad timestamp {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def require_datetime(value: Any, field: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise PayloadError(f"missing timestamp {field}")
    return parsed


def require(obj: JSON | None, key: str) -> Any:
    if not isinstance(obj, dict) or obj.get(key) in (None, ""):
        raise PayloadError(f"missing field {key!r}")
    return obj[key]


def amount(money: Any) -> Decimal:
    """`{amount, currency}` → Decimal; absent money is zero."""
    if not isinstance(money, dict) or money.get("amount") is None:
        return ZERO
    try:
        return Decimal(str(money["amount"]))
    except InvalidOperation as exc:
        raise PayloadError(f"bad amount {money!r}") from exc


def gross(taxed: Any) -> Decimal:
    return amount(taxed.get("gross")) if isinstance(taxed, dict) else ZERO


def metadata_dict(items: Any) -> dict[str, str]:
    if not isinstance(items, list):
        return {}
    return {
        str(i["key"]): str(i.get("value") or "")
        for i in items
        if isinstance(i, dict) and i.get("key")
    }


def source_from_metadata(meta: dict[str, str]) -> dict[str, str | None]:
    """UTM tags and referrer, as storefronts usually save them in metadata (any key case)."""
    lowered = {k.lower().lstrip("_"): v for k, v in meta.items()}
    source: dict[str, str | None] = {k: (lowered.get(k) or None) for k in UTM_KEYS}
    source["referrer"] = lowered.get("referrer") or lowered.get("referer") or None
    return source


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if "@" in email else None


def normalise_phone(value: Any, country: str | None = None) -> str | None:
    """E.164 via libphonenumber; national numbers need the address's country."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _e164(value, (country or "").upper() or None)


@functools.lru_cache(maxsize=65_536)
def _e164(value: str, country: str | None) -> str | None:
    """Parsing is slow (tens of µs) and a customer's number recurs on every order: an
    import or a burst of webhooks parses each distinct number once."""
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def address_country(address: Any) -> str | None:
    if not isinstance(address, dict):
        return None
    country = address.get("country")
    code = country.get("code") if isinstance(country, dict) else None
    return str(code).upper()[:2] if code else None


def address_phone(address: Any) -> str | None:
    if not isinstance(address, dict):
        return None
    return normalise_phone(address.get("phone"), address_country(address))


def decode_global_id(global_id: str) -> tuple[str, str] | None:
    """`T3JkZXI6MQ==` → ("Order", "1"); None when it is not a Saleor global id."""
    try:
        raw = base64.b64decode(global_id + "=" * (-len(global_id) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    kind, sep, ident = raw.partition(":")
    return (kind, ident) if sep else None


def currency_of(*monies: Any) -> str:
    for money in monies:
        if isinstance(money, dict) and money.get("currency"):
            return str(money["currency"])[:3]
    return "XXX"
