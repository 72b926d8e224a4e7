"""Folding CHECKOUT_* events: snapshots kept after Saleor deletes the checkout."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.erased import skip_erased
from plugin.commerce.models import Checkout, CheckoutLine, CheckoutState, Order
from plugin.commerce.orders import SOURCE_COLUMNS, checkout_keys
from plugin.kit.money import format_money
from plugin.profiles.contacts import claims_for, language, location_fields, name_fields
from plugin.profiles.fields import apply_fields, apply_source
from plugin.profiles.identity import buyer_fields, placed_by, resolve, with_placed_by
from plugin.profiles.models import Profile
from plugin.profiles.suppression import person_contacts
from plugin.saleor.payloads import (
    JSON,
    amount,
    currency_of,
    gross,
    metadata_dict,
    normalise_email,
    parse_datetime,
    require,
    require_datetime,
    source_from_metadata,
)
from plugin.timeline.keys import entry_key
from plugin.timeline.service import record

EVENT_TITLES = {
    "checkout_created": "Checkout started",
    "checkout_updated": "Checkout updated",
    "checkout_fully_paid": "Checkout paid",
    "checkout_metadata_updated": "Checkout metadata updated",
}


def checkout_values(data: JSON) -> dict[str, Any]:
    """The checkout's columns from one snapshot (shared by the webhook fold and the import)."""
    total = data.get("totalPrice") or {}
    channel = data.get("channel") or {}
    meta = metadata_dict(data.get("metadata"))
    user = data.get("user") if isinstance(data.get("user"), dict) else None
    lines = data.get("lines") or []
    values: dict[str, Any] = {
        "token": str(data["token"]) if data.get("token") else None,
        "email": normalise_email(data.get("email")),
        "saleor_user_id": user.get("id") if user else None,
        "channel_slug": channel.get("slug"),
        "currency": currency_of(total.get("gross"), {"currency": channel.get("currencyCode")}),
        "total_gross": gross(total),
        "subtotal_gross": gross(data.get("subtotalPrice")),
        "lines_count": len(lines),
        "quantity": sum(int(line.get("quantity") or 0) for line in lines),
        "charge_status": data.get("chargeStatus"),
        "voucher_code": data.get("voucherCode"),
        "language": language(data.get("languageCode")),
        "saleor_metadata": meta,
    }
    values.update(source_from_metadata(meta))
    return values


def _apply_snapshot(checkout: Checkout, data: JSON) -> None:
    for name, value in checkout_values(data).items():
        setattr(checkout, name, value)


def checkout_line_values(data: JSON, checkout_currency: str) -> list[dict[str, Any]]:
    """The checkout's lines from one snapshot, without their checkout and shop ids."""
    result = []
    for line in data.get("lines") or []:
        variant = line.get("variant") or {}
        product = variant.get("product") or {}
        category = product.get("category") or {}
        price = (line.get("totalPrice") or {}).get("gross")
        result.append(
            {
                "saleor_id": str(line.get("id") or ""),
                "product_id": product.get("id"),
                "product_name": product.get("name") or "",
                "variant_id": variant.get("id"),
                "variant_name": variant.get("name"),
                "sku": variant.get("sku"),
                "category_id": category.get("id"),
                "category_name": category.get("name"),
                "quantity": int(line.get("quantity") or 0),
                "total_price_gross": amount(price),
                "currency": currency_of(price, {"currency": checkout_currency}),
            }
        )
    return result


def _lines(checkout: Checkout, data: JSON) -> list[CheckoutLine]:
    return [
        CheckoutLine(installation_id=checkout.installation_id, checkout_id=checkout.id, **values)
        for values in checkout_line_values(data, checkout.currency)
    ]


def checkout_summary(event_type: str, data: JSON, currency: str) -> tuple[str, dict[str, Any]]:
    """The timeline line and data of a checkout event: its own snapshot, not the newest."""
    event_total = gross(data.get("totalPrice"))
    event_quantity = sum(int(line.get("quantity") or 0) for line in data.get("lines") or [])
    summary = f"{EVENT_TITLES.get(event_type, 'Checkout')} — {event_quantity} item(s), "
    summary += format_money(event_total, currency)
    entry = {"lines": len(data.get("lines") or []), "total": str(event_total), "currency": currency}
    return summary, entry


def checkout_profile_fields(
    data: JSON, email: str | None, checkout_language: str | None
) -> dict[str, Any]:
    billing, shipping = data.get("billingAddress"), data.get("shippingAddress")
    return {
        "email": email,
        "language": checkout_language,
        **name_fields(billing or shipping),
        **location_fields(shipping or billing),
    }


async def fold_checkout_event(
    session: AsyncSession, installation_id: int, event_type: str, event: JSON
) -> list[Profile]:
    data = require(event, "checkout")
    saleor_id = str(require(data, "id"))
    issued_at = require_datetime(event.get("issuedAt"), "issuedAt")
    updated_at = parse_datetime(data.get("updatedAt")) or issued_at
    billing, shipping = data.get("billingAddress"), data.get("shippingAddress")
    contacts = person_contacts(data.get("user"), data.get("email"))
    if await skip_erased(session, installation_id, contacts, issued_at):
        return []

    claims = claims_for(data.get("user"), data.get("email"), billing, shipping)
    profile = await resolve(session, installation_id, claims, updated_at)

    checkout = await session.scalar(
        select(Checkout).where(
            Checkout.installation_id == installation_id, Checkout.saleor_id == saleor_id
        )
    )
    if checkout is None:
        checkout = Checkout(
            installation_id=installation_id,
            saleor_id=saleor_id,
            started_at=parse_datetime(data.get("created")) or updated_at,
            source_updated_at=updated_at,
        )
        _apply_snapshot(checkout, data)
        session.add(checkout)
        await session.flush()
        session.add_all(_lines(checkout, data))
    elif updated_at >= checkout.source_updated_at:
        _apply_snapshot(checkout, data)
        checkout.source_updated_at = updated_at
        await session.execute(delete(CheckoutLine).where(CheckoutLine.checkout_id == checkout.id))
        session.add_all(_lines(checkout, data))
    if profile is not None:
        checkout.profile_id = profile.id

    # The order may have arrived first (deliveries are unordered).
    keys = checkout_keys(saleor_id) + ([checkout.token] if checkout.token else [])
    order_id = await session.scalar(
        select(Order.saleor_id).where(
            Order.installation_id == installation_id, or_(Order.checkout_saleor_id.in_(keys))
        )
    )
    if order_id is not None:
        checkout.state, checkout.order_saleor_id = CheckoutState.CONVERTED, order_id
    await session.flush()

    if profile is None:
        return []
    fields = checkout_profile_fields(data, claims.email, checkout.language)
    apply_fields(profile, updated_at, buyer_fields(fields, claims, profile))
    apply_source(profile, checkout.started_at, {n: getattr(checkout, n) for n in SOURCE_COLUMNS})
    summary, entry = with_placed_by(
        *checkout_summary(event_type, data, checkout.currency), placed_by(claims, profile)
    )
    await record(
        session,
        installation_id=installation_id,
        profile_id=profile.id,
        kind=event_type,
        occurred_at=issued_at,
        subject_type="checkout",
        subject_id=saleor_id,
        summary=summary,
        data=entry,
        dedup_key=entry_key(event_type, saleor_id, updated_at),
    )
    return [profile]
