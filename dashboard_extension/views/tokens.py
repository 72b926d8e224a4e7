"""Developer API tokens: list, create (the secret shown once), revoke."""

from __future__ import annotations

from dashboard_extension.views import Call, Rendered, read
from plugin.api.permissions import Permission


async def token_list(call: Call) -> Rendered:
    answer = await read(call, "tokens")
    data = answer.data or {}
    held = set(data["viewer"]["permissions"])
    return Rendered(
        "fragments/tokens.html",
        {
            "tokens": data["apiTokens"],
            "grantable": [p.value for p in Permission if p.value in held],
        },
    )
