"""Run the pages' GraphQL documents through the app's one schema, as the caller.

The pages read through the same API as developers (ARCHITECTURE: "one schema"): the
fragment request carries the dashboard's token in the app-sdk headers, and the document
runs with the same authentication, permission checks, loaders and cost limit as
`POST /graphql`. The documents live in `documents/*.graphql`; a test validates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from plugin.api.context import CURRENT, ApiContext
from plugin.api.errors import format_error
from plugin.api.schema import schema
from plugin.context import AppContext

DOCUMENTS = Path(__file__).parent / "documents"


@cache
def document(name: str) -> str:
    return (DOCUMENTS / f"{name}.graphql").read_text()


@dataclass(frozen=True)
class Answer:
    """`data` as GraphQL answered it, and the typed errors (`extensions.code`)."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        return {str(e.get("extensions", {}).get("code")) for e in self.errors}

    @property
    def authenticated(self) -> bool:
        return "UNAUTHENTICATED" not in self.codes

    def first_message(self) -> str:
        return str(self.errors[0].get("message", "")) if self.errors else ""


async def open_api(app: AppContext, headers: Mapping[str, str]) -> ApiContext:
    """The request's API context (authenticated or carrying why not); close it after use."""
    return await ApiContext.open(app, headers)


async def run(api: ApiContext, name: str, variables: Mapping[str, Any] | None = None) -> Answer:
    """Execute `documents/<name>.graphql` in the request's API context."""
    token = CURRENT.set(api)
    try:
        result = await schema.execute(
            document(name), variable_values=dict(variables or {}), context_value=api
        )
    finally:
        CURRENT.reset(token)
    return Answer(result.data, [format_error(error) for error in result.errors or []])
