"""RFM boundaries a merchant sets by hand ("a regular orders 4+ times, whatever the
quantiles say"). Stored in the installation's preferences under "rfm"; every part is
optional and replaces only its own dimension of the computed quantiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.saleor.models import Installation


class RfmSettingsError(ValueError):
    """Boundaries that cannot be used, naming the part."""


@dataclass(frozen=True)
class RfmSettings:
    # four boundaries each, worst first: recency in days (descending), frequency in orders
    # (ascending), monetary per currency (ascending)
    recency_days: tuple[float, ...] | None = None
    frequency: tuple[float, ...] | None = None
    monetary: dict[str, tuple[Decimal, ...]] = field(default_factory=dict)

    def as_preferences(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.recency_days is not None:
            out["recency_days"] = list(self.recency_days)
        if self.frequency is not None:
            out["frequency"] = list(self.frequency)
        if self.monetary:
            out["monetary"] = {c: [str(v) for v in vs] for c, vs in self.monetary.items()}
        return out


def _four(raw: Any, where: str, *, descending: bool) -> tuple[Decimal, ...]:
    if not isinstance(raw, list) or len(raw) != 4:
        raise RfmSettingsError(f"{where}: expected a list of 4 boundaries")
    values = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RfmSettingsError(f"{where}[{i}]: expected a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise RfmSettingsError(f"{where}[{i}]: {value!r} is not a number") from None
        if not number.is_finite() or number < 0:
            raise RfmSettingsError(f"{where}[{i}]: expected a number ≥ 0")
        values.append(number)
    pairs = list(zip(values, values[1:], strict=False))
    if not all((a > b) if descending else (a < b) for a, b in pairs):
        order = "decreasing (240, 120, 60, 30)" if descending else "increasing (1, 2, 3, 4)"
        raise RfmSettingsError(f"{where}: boundaries must be strictly {order}")
    return tuple(values)


def parse_rfm_settings(raw: Any) -> RfmSettings:
    if raw is None:
        return RfmSettings()
    allowed = {"recency_days", "frequency", "monetary"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise RfmSettingsError(f"RFM settings take only {', '.join(sorted(allowed))}")
    recency = raw.get("recency_days")
    frequency = raw.get("frequency")
    monetary = raw.get("monetary") or {}
    if not isinstance(monetary, dict):
        raise RfmSettingsError('monetary: expected {"USD": [b1, b2, b3, b4], …}')
    for currency in monetary:
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            raise RfmSettingsError(f"monetary: {currency!r} is not a currency code")
    return RfmSettings(
        tuple(float(v) for v in _four(recency, "recency_days", descending=True))
        if recency is not None
        else None,
        tuple(float(v) for v in _four(frequency, "frequency", descending=False))
        if frequency is not None
        else None,
        {
            c.upper(): _four(v, f"monetary.{c}", descending=False)
            for c, v in sorted(monetary.items())
        },
    )


def rfm_settings_of(preferences: dict[str, Any] | None) -> RfmSettings:
    try:
        return parse_rfm_settings((preferences or {}).get("rfm"))
    except RfmSettingsError:  # validated when saved; never block scoring on old data
        return RfmSettings()


async def save_rfm_settings(session: AsyncSession, installation_id: int, raw: Any) -> RfmSettings:
    """Validate and store; the next refresh (or `refresh_rfm`) rescores with them."""
    parsed = parse_rfm_settings(raw)
    installation = await session.get(Installation, installation_id)
    if installation is None:
        raise LookupError(installation_id)
    installation.preferences = {**(installation.preferences or {}), "rfm": parsed.as_preferences()}
    return parsed
