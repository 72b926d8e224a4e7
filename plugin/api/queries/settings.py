"""`scoreSettings` and `rfmSettings`: how the shop scores its customers (MANAGE_USERS)."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.types.settings import RfmSettingsType, ScoreSettingsType
from plugin.saleor.models import Installation
from plugin.scoring.weights import settings_of
from plugin.segments.rfm_settings import rfm_settings_of


async def preferences(info: Info, installation_id: int) -> dict[str, object]:
    rows = await info.context.scalars(
        select(Installation.preferences).where(Installation.id == installation_id)
    )
    return dict(rows[0] or {}) if rows else {}


@strawberry.type
class SettingsQueries:
    @api_field("The customer score's weights and source values. Needs MANAGE_USERS.")
    async def score_settings(self, info: Info) -> ScoreSettingsType:
        viewer = info.context.require(*permissions.CUSTOMERS)
        return ScoreSettingsType.of(settings_of(await preferences(info, viewer.installation_id)))

    @api_field("Hand-set RFM boundaries (null parts use the quintiles). Needs MANAGE_USERS.")
    async def rfm_settings(self, info: Info) -> RfmSettingsType:
        viewer = info.context.require(*permissions.CUSTOMERS)
        return RfmSettingsType.of(rfm_settings_of(await preferences(info, viewer.installation_id)))
