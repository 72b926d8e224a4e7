"""Developer API tokens as listed (never with the secret, except once at creation)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from plugin.api.ids import to_global_id
from plugin.api.models import ApiToken as ApiTokenRow
from plugin.api.permissions import Permission


@strawberry.type
class ApiToken:
    pk: strawberry.Private[int]
    name: str
    prefix: str = strawberry.field(description="The token's first characters.")
    permissions: list[Permission]
    created_by_email: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("ApiToken", self.pk))

    @classmethod
    def of(cls, row: ApiTokenRow) -> ApiToken:
        return cls(
            pk=row.id,
            name=row.name,
            prefix=row.prefix,
            permissions=[Permission(p) for p in row.permissions if p in Permission.__members__],
            created_by_email=row.created_by_email,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="The new token: `token` is shown this once, store it now.")
class ApiTokenCreated:
    token: str
    api_token: ApiToken
