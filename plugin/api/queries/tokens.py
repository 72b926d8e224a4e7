"""`apiTokens`: the shop's developer tokens (configuration: MANAGE_USERS + MANAGE_APPS)."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from plugin.api import models, permissions
from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.types.token import ApiToken


@strawberry.type
class TokenQueries:
    @api_field("Developer API tokens, newest first (secrets are never shown).")
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        viewer = info.context.require(*permissions.CONFIGURATION)
        rows = await info.context.scalars(
            select(models.ApiToken)
            .where(models.ApiToken.installation_id == viewer.installation_id)
            .order_by(models.ApiToken.id.desc())
        )
        return [ApiToken.of(row) for row in rows]


@strawberry.type(description="Who is calling, as the API sees it.")
class Viewer:
    installation_id: strawberry.Private[int]
    saleor_api_url: str
    user_id: str | None
    email: str | None
    permissions: list[str]
    is_api_token: bool


@strawberry.type
class ViewerQueries:
    @api_field("The caller: useful to check a token.")
    def viewer(self, info: Info) -> Viewer:
        viewer = info.context.require()
        return Viewer(
            installation_id=viewer.installation_id,
            saleor_api_url=viewer.saleor_api_url,
            user_id=viewer.user_id,
            email=viewer.email,
            permissions=sorted(viewer.permissions),
            is_api_token=viewer.token_id is not None,
        )
