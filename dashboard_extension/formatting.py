"""Jinja filters: numbers, money and times as plain text that JavaScript can localise.

The server writes an unambiguous English rendering inside `<data>`/`<time>` elements
carrying the raw value, so a page reads well without JavaScript; `pages.js` re-renders
them in the dashboard's locale (`localeChanged`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape

from plugin.kit.money import format_money


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: Any) -> Markup:
    """`{amount, currency}` → `<data class="money" value=… data-currency=…>12.50 EUR</data>`."""
    if not isinstance(value, dict) or value.get("amount") is None:
        return Markup('<span class="muted">—</span>')
    amount = _decimal(value["amount"])
    currency = str(value.get("currency") or "")
    if amount is None:
        return Markup('<span class="muted">—</span>')
    return Markup('<data class="money" value="{}" data-currency="{}">{}</data>').format(
        amount, currency, format_money(amount, currency)
    )


def number(value: Any, digits: int = 0) -> Markup:
    if value is None:
        return Markup('<span class="muted">—</span>')
    amount = _decimal(value)
    if amount is None:
        return Markup(escape(value))
    shown = f"{amount:,.{digits}f}"
    return Markup('<data class="num" value="{}" data-digits="{}">{}</data>').format(
        amount, digits, shown
    )


def percent(value: Any, digits: int = 0) -> Markup:
    if value is None:
        return Markup('<span class="muted">—</span>')
    ratio = float(value)
    return Markup('<data class="pct" value="{}" data-digits="{}">{}%</data>').format(
        ratio, digits, f"{ratio * 100:.{digits}f}"
    )


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: Any, with_time: bool = False) -> Markup:
    """A `<time>` in UTC text; JS shows it in the viewer's locale and time zone."""
    moment = parse_time(value)
    if moment is None:
        return Markup('<span class="muted">—</span>')
    moment = moment.astimezone(UTC)
    shown = moment.strftime("%d %b %Y %H:%M UTC" if with_time else "%d %b %Y")
    return Markup('<time datetime="{}" data-with-time="{}">{}</time>').format(
        moment.isoformat().replace("+00:00", "Z"), "1" if with_time else "", shown
    )


def humanize(value: Any) -> str:
    """`order_fully_paid` → `Order fully paid`."""
    text = str(value or "").replace("_", " ").strip()
    if text.isupper():  # Saleor's enums: FULFILLED → Fulfilled
        text = text.lower()
    return text[:1].upper() + text[1:]


FILTERS = {
    "money": money,
    "number": number,
    "percent": percent,
    "when": when,
    "humanize": humanize,
}
