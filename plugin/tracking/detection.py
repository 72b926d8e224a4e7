"""Which carrier carries a parcel: staff choice, then metadata, shipping method, pattern.

Saleor stores only a tracking number, so the carrier is guessed from what the shop
said about the delivery — the metadata, the order's shipping method name, the number's
shape read together with the country it goes to — and staff can always correct it (the
choice then sticks). A bare number says little: ten digits are a CDEK number only on its
way to a country CDEK serves (a US `1234567890` is not), fourteen digits a Russian Post
one only inside Russia. With no clue the source is `unknown`: the parcel goes to the
aggregator (which recognises 1,000+ carriers itself) and the dashboard and the API say
"unknown carrier, pick one" instead of naming a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Metadata keys a shop (or a shipping plugin) may set on the fulfillment or the order.
METADATA_KEYS = ("carrier", "tracking_carrier", "courier", "shipping_carrier")

CARRIERS = ("aftership", "cdek", "russian_post", "manual")

UNKNOWN = "unknown"  # the source when nothing pointed at a carrier: staff should pick one

# Whole words in a shipping method's name, lower-cased, by carrier. Carriers the app has
# no adapter of its own for are tracked through the aggregator.
_METHOD_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cdek", ("cdek", "сдэк", "sdek")),
    ("russian_post", ("russian post", "почта россии", "pochta", "ems russia")),
    (
        "aftership",
        (
            "ups",
            "usps",
            "fedex",
            "dhl",
            "dpd",
            "gls",
            "tnt",
            "royal mail",
            "canada post",
            "australia post",
            "postnl",
            "colissimo",
            "la poste",
            "inpost",
            "evri",
            "hermes",
        ),
    ),
)
_METHOD_RULES = tuple(
    (name, re.compile(r"(?<!\w)(" + "|".join(map(re.escape, words)) + r")(?!\w)"))
    for name, words in _METHOD_WORDS
)

# Countries CDEK delivers to; Russian Post's domestic numbers only mean anything in Russia.
CDEK_COUNTRIES = frozenset({"RU", "BY", "KZ", "AM", "KG", "UZ"})

# Tracking-number shapes, each with the destinations it is read for (None: any): UPU S10
# posted in Russia, Russian Post's 14-digit domestic numbers, CDEK's 10 digits; UPS's
# `1Z…` and other S10 postal items are the aggregator's.
_PATTERNS: tuple[tuple[str, re.Pattern[str], frozenset[str] | None], ...] = (
    ("russian_post", re.compile(r"^[A-Z]{2}\d{9}RU$"), None),
    ("russian_post", re.compile(r"^\d{14}$"), frozenset({"RU"})),
    ("cdek", re.compile(r"^\d{10}$"), CDEK_COUNTRIES),
    ("aftership", re.compile(r"^1Z[0-9A-Z]{16}$"), None),
    ("aftership", re.compile(r"^[A-Z]{2}\d{9}[A-Z]{2}$"), None),
)


@dataclass(frozen=True)
class Detected:
    carrier: str
    source: str  # metadata, shipping_method, pattern or unknown


def normalise_carrier(value: str) -> str:
    """`Russian Post` / `russian-post` → `russian_post`; raises on an unknown carrier."""
    key = re.sub(r"[\s\-]+", "_", value.strip().lower())
    if key not in CARRIERS:
        raise ValueError(f"unknown carrier {value!r}; one of {', '.join(CARRIERS)}")
    return key


def _from_metadata(*metadata: Mapping[str, Any] | None) -> str | None:
    for meta in metadata:
        for key in METADATA_KEYS:
            value = (meta or {}).get(key)
            if isinstance(value, str) and value.strip():
                try:
                    return normalise_carrier(value)
                except ValueError:
                    continue
    return None


def detect(
    tracking_number: str,
    *,
    shipping_method: str | None = None,
    country: str | None = None,
    fulfillment_metadata: Mapping[str, Any] | None = None,
    order_metadata: Mapping[str, Any] | None = None,
    default: str = "aftership",
) -> Detected:
    """The most specific clue wins: metadata, then the shipping method's name, then the
    number's shape for the destination `country` (ISO code); otherwise `default` (the
    aggregator) with the source `unknown`."""
    carrier = _from_metadata(fulfillment_metadata, order_metadata)
    if carrier:
        return Detected(carrier, "metadata")
    method = (shipping_method or "").lower()
    for name, rule in _METHOD_RULES:
        if rule.search(method):
            return Detected(name, "shipping_method")
    number = re.sub(r"\s+", "", tracking_number).upper()
    destination = (country or "").strip().upper()
    for name, pattern, countries in _PATTERNS:
        if pattern.match(number) and (countries is None or destination in countries):
            return Detected(name, "pattern")
    return Detected(default, UNKNOWN)
