"""Folding ORDER_* events: the order snapshot, its lines, its buyer's profile."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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
from plugin.profiles.identity import resolve
from plugin.profiles.models import Profile
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


def _apply_snapshot(order: Order, data: JSON, updated_at: datetime) -> None:
    total = data.get("total") or {}
    channel = data.get("channel") or {}
    currency = currency_of(total.get("gross"), {"currency": channel.get("currencyCode")})
    shipping = data.get("shippingAddress")
    meta = metadata_dict(data.get("metadata"))
    user = data.get("user") if isinstance(data.get("user"), dict) else None
    order.number = str(data["number"]) if data.get("number") is not None else None
    order.status = str(data.get("status") or "UNFULFILLED")
    order.origin = data.get("origin")
    order.charge_status = data.get("chargeStatus")
    order.authorize_status = data.get("authorizeStatus")
    order.is_paid = bool(data.get("isPaid"))
    order.channel_slug = channel.get("slug")
    order.currency = currency
    order.total_gross = gross(total)
    order.total_net = amount(total.get("net"))
    order.total_tax = amount(total.get("tax"))
    order.subtotal_gross = gross(data.get("subtotal"))
    order.shipping_gross = gross(data.get("shippingPrice"))
    order.total_charged = amount(data.get("totalCharged"))
    order.total_refunded = amount(data.get("totalRefunded"))
    order.voucher_code = data.get("voucherCode")
    order.user_email = normalise_email(data.get("userEmail"))
    order.saleor_user_id = user.get("id") if user else None
    order.checkout_saleor_id = data.get("checkoutId")
    order.language = language(data.get("languageCodeEnum"))
    order.shipping_city = city_name(shipping.get("city")) if isinstance(shipping, dict) else None
    order.shipping_country = address_country(shipping)
    order.saleor_metadata = meta
    order.placed_at = parse_datetime(data.get("created")) or updated_at
    order.source_updated_at = updated_at
    source = source_from_metadata(meta)
    for name, value in source.items():
        setattr(order, name, value)


def _lines(order: Order, data: JSON) -> list[OrderLine]:
    lines = []
    for line in data.get("lines") or []:
        variant = line.get("variant") or {}
        product = variant.get("product") or {}
        category = product.get("category") or {}
        product_type = product.get("productType") or {}
        unit = (line.get("unitPrice") or {}).get("gross")
        lines.append(
            OrderLine(
                installation_id=order.installation_id,
                order_id=order.id,
                saleor_id=str(line.get("id") or ""),
                product_id=product.get("id"),
                product_name=line.get("productName") or product.get("name") or "",
                variant_id=line.get("productVariantId") or variant.get("id"),
                variant_name=line.get("variantName"),
                sku=line.get("productSku") or variant.get("sku"),
                category_id=category.get("id"),
                category_name=category.get("name"),
                category_slug=category.get("slug"),
                product_type=product_type.get("name"),
                quantity=int(line.get("quantity") or 0),
                quantity_fulfilled=int(line.get("quantityFulfilled") or 0),
                unit_price_gross=amount(unit),
                total_price_gross=gross(line.get("totalPrice")),
                currency=currency_of(unit, {"currency": order.currency}),
            )
        )
    return lines


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
            for name in (
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "utm_term",
                "utm_content",
                "referrer",
            ):
                setattr(order, name, getattr(checkout, name))
    await session.flush()

    touched: list[Profile] = []
    if profile is not None:
        # What the buyer typed is a statement as of placing the order: later status
        # changes (updatedAt) must not make an old e-mail or name look new.
        apply_fields(
            profile,
            order.placed_at,
            {
                "email": claims.email,
                "language": language(data.get("languageCodeEnum")),
                **name_fields(billing or shipping),
                **location_fields(shipping or billing),
            },
        )
        apply_source(
            profile,
            order.placed_at,
            {
                n: getattr(order, n)
                for n in (
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                    "utm_term",
                    "utm_content",
                    "referrer",
                )
            },
        )
        number = order.number or saleor_id
        await record(
            session,
            installation_id=installation_id,
            profile_id=profile.id,
            kind=event_type,
            occurred_at=issued_at,
            subject_type="order",
            subject_id=saleor_id,
            summary=EVENT_TITLES.get(event_type, "Order #{number}").format(number=number)
            + " — "
            + format_money(gross(data.get("total")), order.currency),
            data={
                "number": order.number,
                "status": data.get("status"),
                "total": str(gross(data.get("total"))),
                "currency": order.currency,
            },
            dedup_key=f"{event_type}:{saleor_id}:{issued_at.isoformat()}",
        )
        touched.append(profile)
    if previous_profile_id and profile is not None and previous_profile_id != profile.id:
        previous = await session.get(Profile, previous_profile_id)
        if previous is not None:
            touched.append(previous)
    return touched
