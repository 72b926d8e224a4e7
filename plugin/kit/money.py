"""Money as people read it: two decimals (or the currency's own), then the code."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 currencies without minor units that shops commonly sell in.
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "XAF", "XOF", "UGX", "PYG"}


def format_money(amount: Decimal, currency: str) -> str:
    """`Decimal("65.0000"), "USD"` → `65.00 USD` — the same text however it was stored."""
    exponent = Decimal("1") if currency.upper() in ZERO_DECIMAL else Decimal("0.01")
    return f"{amount.quantize(exponent, rounding=ROUND_HALF_UP)} {currency}"
