"""Which carrier carries a parcel: staff choice, then metadata, shipping method, pattern.

Saleor stores only a tracking number, so the carrier is guessed from what the shop
said about the delivery; staff can always correct it (the choice then sticks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Metadata keys a shop (or a shipping plugin) may set on the fulfillment or the order.
METADATA_KEYS = ("carrier", "tracking_carrier", "courier", "shipping_carrier")

CARRIERS = ("aftership", "cdek", "russian_post", "manual")

# Words in a shipping method's name, lower-cased, by carrier.
_METHOD_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cdek", ("cdek", "сдэк", "sdek")),
    ("russian_post", ("russian post", "почта россии", "pochta", "ems russia")),
)

# Tracking-number shapes (UPU S10 for Russian Post; CDEK numbers are 10 digits).
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("russian_post", re.compile(r"^[A-Z]{2}\d{9}RU$")),
    ("russian_post", re.compile(r"^\d{14}$")),
    ("cdek", re.compile(r"^\d{10}$")),
)


@dataclass(frozen=True)
class Detected:
    carrier: str
    source: str  # metadata, shipping_method, pattern or default


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
    fulfillment_metadata: Mapping[str, Any] | None = None,
    order_metadata: Mapping[str, Any] | None = None,
    default: str = "aftership",
) -> Detected:
    """The most specific clue wins: metadata, then method name, then number shape;
    otherwise the aggregator, which knows 1,000+ carriers."""
    carrier = _from_metadata(fulfillment_metadata, order_metadata)
    if carrier:
        return Detected(carrier, "metadata")
    method = (shipping_method or "").lower()
    for name, words in _METHOD_WORDS:
        if any(word in method for word in words):
            return Detected(name, "shipping_method")
    number = tracking_number.strip().upper()
    for name, pattern in _PATTERNS:
        if pattern.match(number):
            return Detected(name, "pattern")
    return Detected(default, "default")
