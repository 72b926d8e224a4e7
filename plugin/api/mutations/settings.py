"""Tuning the customer score and the RFM boundaries (configuration: MANAGE_USERS +
MANAGE_APPS). The scheduled refresh (every minute by default) rescores the shop with them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput
from plugin.api.fields import mutation as api_mutation
from plugin.api.types.settings import RfmSettingsType, ScoreSettingsType
from plugin.saleor.models import Installation
from plugin.scoring.service import save_settings
from plugin.scoring.weights import ScoreSettingsError, settings_of
from plugin.segments.rfm_settings import RfmSettingsError, rfm_settings_of, save_rfm_settings


@strawberry.input(description="A factor's new weight (0 to 1000).")
class ScoreWeightInput:
    factor: str
    weight: float


@strawberry.input(description="What a source is worth to the score, 0 to 1.")
class SourceValueInput:
    source: str
    value: float


@strawberry.input(
    description="Weights given replace those factors' weights; the others keep theirs. "
    "Sources, when given, replace the whole list."
)
class ScoreSettingsInput:
    weights: list[ScoreWeightInput] | None = None
    sources: list[SourceValueInput] | None = None


@strawberry.input(description="Four increasing boundaries of one currency's spend.")
class MonetaryBoundariesInput:
    currency: str
    boundaries: list[Decimal]


@strawberry.input(
    description="Each part given replaces that part; an empty list goes back to quintiles."
)
class RfmSettingsInput:
    recency_days: list[float] | None = strawberry.field(
        default=None, description="Four decreasing day counts, e.g. [240, 120, 60, 30]."
    )
    frequency: list[float] | None = strawberry.field(
        default=None, description="Four increasing order counts, e.g. [2, 3, 5, 8]."
    )
    monetary: list[MonetaryBoundariesInput] | None = None


def _current(installation: Installation | None) -> dict[str, Any]:
    return dict(installation.preferences or {}) if installation is not None else {}


@strawberry.type
class SettingsMutations:
    @api_mutation("Change score weights or source values. Needs MANAGE_USERS and MANAGE_APPS.")
    async def score_settings_update(
        self, info: Info, input: ScoreSettingsInput
    ) -> ScoreSettingsType:
        viewer = info.context.require(*permissions.CONFIGURATION)
        async with info.context.write() as session:
            installation = await session.get(Installation, viewer.installation_id)
            raw: dict[str, Any] = settings_of(_current(installation)).as_preferences()
            for item in input.weights or []:
                raw["weights"][item.factor] = item.weight
            if input.sources is not None:
                raw["sources"] = {item.source: item.value for item in input.sources}
            try:
                saved = await save_settings(session, viewer.installation_id, raw)
            except ScoreSettingsError as error:
                raise InvalidInput(f"Invalid score settings: {error}.", field="input") from None
        return ScoreSettingsType.of(saved)

    @api_mutation("Set or clear RFM boundaries. Needs MANAGE_USERS and MANAGE_APPS.")
    async def rfm_settings_update(self, info: Info, input: RfmSettingsInput) -> RfmSettingsType:
        viewer = info.context.require(*permissions.CONFIGURATION)
        async with info.context.write() as session:
            installation = await session.get(Installation, viewer.installation_id)
            raw = rfm_settings_of(_current(installation)).as_preferences()
            for name, value in (
                ("recency_days", input.recency_days),
                ("frequency", input.frequency),
            ):
                if value is not None:
                    if value:
                        raw[name] = value
                    else:
                        raw.pop(name, None)
            if input.monetary is not None:
                raw["monetary"] = {
                    m.currency: [str(b) for b in m.boundaries] for m in input.monetary
                }
            try:
                saved = await save_rfm_settings(session, viewer.installation_id, raw)
            except RfmSettingsError as error:
                raise InvalidInput(f"Invalid RFM settings: {error}.", field="input") from None
        return RfmSettingsType.of(saved)
