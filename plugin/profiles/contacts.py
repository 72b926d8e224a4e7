"""Turning the people in Saleor payloads (users, e-mails, addresses) into claims and fields."""

from __future__ import annotations

from typing import Any

from plugin.profiles.identity import Claims
from plugin.saleor.payloads import (
    JSON,
    address_country,
    address_phone,
    normalise_email,
)


def claims_for(user: Any, email: Any, *addresses: Any) -> Claims:
    """The keys of the person an object names: its Saleor `user` (who was logged in), the
    `email` on it (the user's own when it has none) and the first address phone. Whether
    the user is that person is `plugin.profiles.identity.buyer_claims`' call."""
    account: dict[str, Any] = user if isinstance(user, dict) else {}
    user_id = account.get("id") or None
    own = normalise_email(account.get("email"))
    phone = next((p for p in (address_phone(a) for a in addresses) if p), None)
    return Claims(
        saleor_user_id=user_id,
        email=normalise_email(email) or own,
        phone=phone,
        account_email=own if user_id else None,
        staff=bool(user_id) and account.get("isStaff") is True,
    )


def _blank_to_none(value: Any) -> Any:
    return value if value not in ("", None) else None


def name_fields(person: Any) -> dict[str, Any]:
    if not isinstance(person, dict):
        return {}
    return {
        "first_name": _blank_to_none(person.get("firstName")),
        "last_name": _blank_to_none(person.get("lastName")),
    }


def city_name(value: Any) -> str | None:
    """Saleor upper-cases cities when it normalises an address (`PARIS`); people write
    `Paris`. All-caps names are title-cased so one city is one segment; others are kept."""
    if not isinstance(value, str) or not value.strip():
        return None
    city = " ".join(value.split())
    return city.title() if city.isupper() else city


def location_fields(address: Any) -> dict[str, Any]:
    if not isinstance(address, dict):
        return {}
    return {
        "city": city_name(address.get("city")),
        "country": address_country(address),
        "phone": address_phone(address),
    }


def address_summary(address: JSON) -> JSON:
    """What the card shows of an address (no Saleor internals)."""
    keys = (
        "firstName",
        "lastName",
        "companyName",
        "streetAddress1",
        "streetAddress2",
        "city",
        "cityArea",
        "postalCode",
        "countryArea",
        "phone",
    )
    summary = {k: address.get(k) for k in keys if address.get(k)}
    if country := address_country(address):
        summary["country"] = country
    return summary


def language(code: Any) -> str | None:
    """`EN_US` / `en-us` → `en-US`."""
    if not isinstance(code, str) or not code:
        return None
    lang, _, region = code.replace("-", "_").partition("_")
    return f"{lang.lower()}-{region.upper()}" if region else lang.lower()
