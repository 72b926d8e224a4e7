"""Developer API tokens: created by a staff user for permissions they hold, revocable."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from plugin.api import models, permissions, tokens
from plugin.api.context import Info
from plugin.api.errors import Forbidden, InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import from_global_id
from plugin.api.permissions import Permission
from plugin.api.types.token import ApiToken, ApiTokenCreated


@strawberry.input
class ApiTokenCreateInput:
    name: str
    permissions: list[Permission]


@strawberry.type
class TokenMutations:
    @api_mutation(
        "Create a token for the caller's shop. Only a staff user (dashboard token) "
        "with MANAGE_USERS and MANAGE_APPS may, and only for permissions they hold."
    )
    async def api_token_create(self, info: Info, input: ApiTokenCreateInput) -> ApiTokenCreated:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        if viewer.token_id is not None:
            raise Forbidden("API tokens cannot create API tokens; use the dashboard.")
        name = input.name.strip()
        if not name or len(name) > 128:
            raise InvalidInput("A name has 1 to 128 characters.", field="name")
        wanted = sorted({p.value for p in input.permissions})
        if not wanted:
            raise InvalidInput("Give at least one permission.", field="permissions")
        lacking = [p for p in wanted if not viewer.has(p)]
        if lacking:
            raise Forbidden(f"You do not hold {', '.join(lacking)}.", field="permissions")
        async with ctx.write() as session:
            issued = await tokens.issue(
                session,
                installation_id=viewer.installation_id,
                name=name,
                permissions=wanted,
                created_by_user_id=viewer.user_id,
                created_by_email=viewer.email,
                now=ctx.now,
            )
        return ApiTokenCreated(token=issued.token, api_token=ApiToken.of(issued.row))

    @api_mutation("Revoke a token: it stops working at once.")
    async def api_token_revoke(self, info: Info, id: strawberry.ID) -> ApiToken:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        pk = from_global_id("ApiToken", id)
        async with ctx.write() as session:
            row = await session.scalar(
                select(models.ApiToken).where(
                    models.ApiToken.id == pk,
                    models.ApiToken.installation_id == viewer.installation_id,
                )
            )
            if row is None:
                raise NotFound("No such API token.", field="id")
            if row.revoked_at is None:
                row.revoked_at = ctx.now
            await session.flush()
        return ApiToken.of(row)
