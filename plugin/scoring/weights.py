"""What the customer score weighs, and how a merchant tunes it.

Each factor is a number from 0 (worst) to 1 (best); the score is their weighted mean
× 100. Weights live in the installation's preferences under "score"; anything not set
there keeps its default, so a shop that tunes one weight keeps the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FACTORS: dict[str, str] = {
    "recency": "how recently they ordered (RFM recency, relative to the shop)",
    "frequency": "how often they order (RFM frequency)",
    "monetary": "how much they spent (RFM monetary)",
    "average_check": "average check against the shop's median (twice the median or more: full)",
    "reliability": "orders not cancelled or refunded",
    "payment": "placed orders that got paid",
    "delivery": "shipped parcels not returned",
    "source": "value of the first-touch source, as the merchant rates it",
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "recency": 25,
    "frequency": 20,
    "monetary": 20,
    "average_check": 10,
    "reliability": 10,
    "payment": 10,
    "delivery": 5,
    "source": 0,
}
NEUTRAL_SOURCE = 0.5


class ScoreSettingsError(ValueError):
    """Settings a merchant sent that cannot be used, with the offending key."""


@dataclass(frozen=True)
class ScoreSettings:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    # source → 0..1; sources not listed count as NEUTRAL_SOURCE
    sources: dict[str, float] = field(default_factory=dict)

    @property
    def total_weight(self) -> float:
        return sum(self.weights.values())

    def as_preferences(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "sources": dict(self.sources)}


def _unit(value: Any, where: str, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoreSettingsError(f"{where}: expected a number")
    if not 0 <= value <= upper:
        raise ScoreSettingsError(f"{where}: expected a number from 0 to {upper:g}")
    return float(value)


def parse_settings(raw: Any) -> ScoreSettings:
    """Validate `{"weights": {...}, "sources": {...}}`; missing parts keep their defaults."""
    if raw is None:
        return ScoreSettings()
    if not isinstance(raw, dict) or set(raw) - {"weights", "sources"}:
        raise ScoreSettingsError('score settings are {"weights": {...}, "sources": {...}}')
    weights = dict(DEFAULT_WEIGHTS)
    for name, value in (raw.get("weights") or {}).items():
        if name not in FACTORS:
            raise ScoreSettingsError(
                f"weights.{name}: unknown factor; known: {', '.join(sorted(FACTORS))}"
            )
        weights[name] = _unit(value, f"weights.{name}", 1000)
    if sum(weights.values()) <= 0:
        raise ScoreSettingsError("weights: at least one weight must be above 0")
    sources = {}
    raw_sources = raw.get("sources") or {}
    if not isinstance(raw_sources, dict) or len(raw_sources) > 200:
        raise ScoreSettingsError("sources: expected at most 200 {source: value from 0 to 1}")
    for source, value in raw_sources.items():
        if not isinstance(source, str) or not source or len(source) > 256:
            raise ScoreSettingsError("sources: a source is text of 1–256 characters")
        sources[source] = _unit(value, f"sources.{source}", 1)
    return ScoreSettings(weights, sources)


def settings_of(preferences: dict[str, Any] | None) -> ScoreSettings:
    """The shop's stored settings (validated when saved; defaults if ever unreadable)."""
    try:
        return parse_settings((preferences or {}).get("score"))
    except ScoreSettingsError:
        return ScoreSettings()
