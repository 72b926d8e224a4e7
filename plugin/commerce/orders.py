"""Folding ORDER_* events: the order snapshot, its lines, its buyer's profile."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.erased import skip_erased
from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.kit.money import format_money
from plugin.profiles.contacts import (
    city_name,
    claims_for,
    language,
    location_fields,
    name_fields,
)
from plugin.profiles.fields import apply_fields, apply_source
from plugin.profiles.identity import buyer_fields, placed_by, resolve, with_placed_by
from plugin.profiles.models import Profile
from plugin.profiles.suppression import person_contacts
from plugin.saleor.payloads import (
    JSON,
    address_country,
    amount,
    currency_of,
    decode_global_id,
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
    "order_created": "Order #{number} placed",
    "order_updated": "Order #{number} updated",
    "order_confirmed": "Order #{number} confirmed",
    "order_paid": "Order #{number} paid",
    "order_fully_paid": "Order #{number} fully paid",
    "order_cancelled": "Order #{number} cancelled",
    "order_expired": "Order #{number} expired",
    "order_fulfilled": "Order #{number} fulfilled",
    "order_refunded": "Order #{number} refunded",
    "order_fully_refunded": "Order #{number} fully refunded",
    "order_metadata_updated": "Order #{number} metadata updated",
}


def checkout_keys(checkout_id: str | None) -> list[str]:
    """An order names its checkout by global id; we match on that and on the bare token."""
    if not checkout_id:
        return []
    decoded = decode_global_id(checkout_id)
    return [checkout_id, decoded[1]] if decoded else [checkout_id]


SOURCE_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer")


def order_values(data: JSON, updated_at: datetime) -> dict[str, Any]:
    """The order's columns from one snapshot (shared by the webhook fold and the import)."""
    total = data.get("total") or {}
    channel = data.get("channel") or {}
    currency = currency_of(total.get("gross"), {"currency": channel.get("currencyCode")})
    shipping = data.get("shippingAddress")
    meta = metadata_dict(data.get("metadata"))
    user = data.get("user") if isinstance(data.get("user"), dict) else None
    values: dict[str, Any] = {
        "number": str(data["number"]) if data.get("number") is not None else None,
        "status": str(data.get("status") or "UNFULFILLED"),
        "origin": data.get("origin"),
        "charge_status": data.get("chargeStatus"),
        "authorize_status": data.get("authorizeStatus"),
        "is_paid": bool(data.get("isPaid")),
        "channel_slug": channel.get("slug"),
        "currency": currency,
        "total_gross": gross(total),
        "total_net": amount(total.get("net")),
        "total_tax": amount(total.get("tax")),
        "subtotal_gross": gross(data.get("subtotal")),
        "shipping_gross": gross(data.get("shippingPrice")),
        "total_charged": amount(data.get("totalCharged")),
        "total_refunded": amount(data.get("totalRefunded")),
        "voucher_code": data.get("voucherCode"),
        "user_email": normalise_email(data.get("userEmail")),
        "saleor_user_id": user.get("id") if user else None,
        "checkout_saleor_id": data.get("checkoutId"),
        "language": language(data.get("languageCodeEnum")),
        "shipping_city": city_name(shipping.get("city")) if isinstance(shipping, dict) else None,
        "shipping_country": address_country(shipping),
        "saleor_metadata": meta,
        "placed_at": parse_datetime(data.get("created")) or updated_at,
        "source_updated_at": updated_at,
    }
    values.update(source_from_metadata(meta))
    return values


def _apply_snapshot(order: Order, data: JSON, updated_at: datetime) -> None:
    for name, value in order_values(data, updated_at).items():
        setattr(order, name, value)


def line_values(data: JSON, order_currency: str) -> list[dict[str, Any]]:
    """The order's lines from one snapshot, without their order and shop ids."""
    lines = []
    for line in data.get("lines") or []:
        variant = line.get("variant") or {}
        product = variant.get("product") or {}
        category = product.get("category") or {}
        product_type = product.get("productType") or {}
        unit = (line.get("unitPrice") or {}).get("gross")
        lines.append(
            {
                "saleor_id": str(line.get("id") or ""),
                "product_id": product.get("id"),
                "product_name": line.get("productName") or product.get("name") or "",
                "variant_id": line.get("productVariantId") or variant.get("id"),
                "variant_name": line.get("variantName"),
                "sku": line.get("productSku") or variant.get("sku"),
                "category_id": category.get("id"),
                "category_name": category.get("name"),
                "category_slug": category.get("slug"),
                "product_type": product_type.get("name"),
                "quantity": int(line.get("quantity") or 0),
                "quantity_fulfilled": int(line.get("quantityFulfilled") or 0),
                "unit_price_gross": amount(unit),
                "total_price_gross": gross(line.get("totalPrice")),
                "currency": currency_of(unit, {"currency": order_currency}),
            }
        )
    return lines


def _lines(order: Order, data: JSON) -> list[OrderLine]:
    return [
        OrderLine(installation_id=order.installation_id, order_id=order.id, **values)
        for values in line_values(data, order.currency)
    ]


def order_summary(event_type: str, number: str, data: JSON, currency: str) -> str:
    """The timeline line of an order event (its own snapshot's total)."""
    return (
        EVENT_TITLES.get(event_type, "Order #{number}").format(number=number)
        + " — "
        + format_money(gross(data.get("total")), currency)
    )


def order_entry_data(order_number: str | None, data: JSON, currency: str) -> dict[str, Any]:
    return {
        "number": order_number,
        "status": data.get("status"),
        "total": str(gross(data.get("total"))),
        "currency": currency,
    }


def order_profile_fields(data: JSON, email: str | None) -> dict[str, Any]:
    """What the buyer typed, as profile fields (a statement as of placing the order)."""
    billing, shipping = data.get("billingAddress"), data.get("shippingAddress")
    return {
        "email": email,
        "language": language(data.get("languageCodeEnum")),
        **name_fields(billing or shipping),
        **location_fields(shipping or billing),
    }


async def _source_from_checkout(session: AsyncSession, order: Order) -> Checkout | None:
    keys = checkout_keys(order.checkout_saleor_id)
    if not keys:
        return None
    return await session.scalar(
        select(Checkout).where(
            Checkout.installation_id == order.installation_id,
            or_(Checkout.saleor_id.in_(keys), Checkout.token.in_(keys)),
        )
    )


async def fold_order_event(
    session: AsyncSession, installation_id: int, event_type: str, event: JSON
) -> list[Profile]:
    """Apply one ORDER_* event; returns the profiles whose figures must be recomputed."""
    data = require(event, "order")
    saleor_id = str(require(data, "id"))
    issued_at = require_datetime(event.get("issuedAt"), "issuedAt")
    updated_at = parse_datetime(data.get("updatedAt")) or issued_at
    billing, shipping = data.get("billingAddress"), data.get("shippingAddress")
    contacts = person_contacts(data.get("user"), data.get("userEmail"))
    if await skip_erased(session, installation_id, contacts, issued_at):
        return []

    claims = claims_for(data.get("user"), data.get("userEmail"), billing, shipping)
    profile = await resolve(session, installation_id, claims, updated_at)

    order = await session.scalar(
        select(Order).where(Order.installation_id == installation_id, Order.saleor_id == saleor_id)
    )
    previous_profile_id = order.profile_id if order else None
    if order is None:
        order = Order(
            installation_id=installation_id,
            saleor_id=saleor_id,
            profile_id=profile.id if profile is not None else None,
        )
        _apply_snapshot(order, data, updated_at)
        session.add(order)
        await session.flush()
        session.add_all(_lines(order, data))
    elif updated_at >= order.source_updated_at:
        _apply_snapshot(order, data, updated_at)
        await session.execute(delete(OrderLine).where(OrderLine.order_id == order.id))
        session.add_all(_lines(order, data))
    if profile is not None and order.profile_id != profile.id:
        order.profile_id = profile.id

    checkout = await _source_from_checkout(session, order)
    if checkout is not None:
        await session.execute(
            update(Checkout)
            .where(Checkout.id == checkout.id)
            .values(state=CheckoutState.CONVERTED, order_saleor_id=order.saleor_id)
        )
        if not any((order.utm_source, order.utm_medium, order.utm_campaign, order.referrer)):
            for name in SOURCE_COLUMNS:
                setattr(order, name, getattr(checkout, name))
    await session.flush()

    touched: list[Profile] = []
    if profile is not None:
        # What the buyer typed is a statement as of placing the order: later status
        # changes (updatedAt) must not make an old e-mail or name look new.
        fields = buyer_fields(order_profile_fields(data, claims.email), claims, profile)
        apply_fields(profile, order.placed_at, fields)
        apply_source(profile, order.placed_at, {n: getattr(order, n) for n in SOURCE_COLUMNS})
        number = order.number or saleor_id
        summary, entry = with_placed_by(
            order_summary(event_type, number, data, order.currency),
            order_entry_data(order.number, data, order.currency),
            placed_by(claims, profile),
        )
        await record(
            session,
            installation_id=installation_id,
            profile_id=profile.id,
            kind=event_type,
            occurred_at=issued_at,
            subject_type="order",
            subject_id=saleor_id,
            summary=summary,
            data=entry,
            dedup_key=entry_key(event_type, saleor_id, updated_at),
        )
        touched.append(profile)
    if previous_profile_id and profile is not None and previous_profile_id != profile.id:
        previous = await session.get(Profile, previous_profile_id)
        if previous is not None:
            touched.append(previous)
    return touched
