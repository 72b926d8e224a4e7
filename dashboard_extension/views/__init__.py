"""Fragment views: each reads through one GraphQL document and renders one template.

A view gets a `Call` (the API context of the dashboard token, the page's parameters) and
returns a `Rendered` template name and values; `Problem` stops it with a message a person
can act on (no token, a forged one, a missing permission, nothing found).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from dashboard_extension.graph import Answer, run
from plugin.api.context import ApiContext
from plugin.db.base import utcnow

# Parameters of the dashboard's iframe URL that every link inside the app keeps.
CONTEXT_PARAMS = ("saleorApiUrl", "domain", "id", "theme", "locale")


@dataclass
class Call:
    api: ApiContext
    params: Mapping[str, str]
    now: datetime = field(default_factory=utcnow)

    def param(self, name: str) -> str | None:
        value = self.params.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def has(self, permission: str) -> bool:
        viewer = self.api.viewer
        return viewer is not None and permission in viewer.permissions

    def link(self, path: str, **extra: str | None) -> str:
        return link(self.params, path, **extra)


def link(params: Mapping[str, str], path: str, **extra: str | None) -> str:
    """A link to another page of the app that keeps the dashboard's context (no token)."""
    query = {k: params[k] for k in CONTEXT_PARAMS if params.get(k)}
    query.update({k: v for k, v in extra.items() if v})
    return f"{path}?{urlencode(query)}" if query else path


@dataclass
class Rendered:
    template: str
    values: dict[str, Any]
    status: int = 200


class Problem(Exception):
    """What went wrong, for a person: shown in place of the page's content."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


View = Callable[[Call], Awaitable[Rendered]]


async def read(call: Call, document: str, variables: Mapping[str, Any] | None = None) -> Answer:
    """Run a document; authentication and permission errors become a `Problem`."""
    answer = await run(call.api, document, variables)
    return check(answer, partial=False)


def check(answer: Answer, *, partial: bool = True) -> Answer:
    """Raise the `Problem` of a refused token or a missing permission; with `partial`,
    other errors (a bad template, a bad rule) stay in the answer for the page to show,
    without it a document that answered nothing is a `Problem` too."""
    if "UNAVAILABLE" in answer.codes:  # e.g. Saleor's new signing key cannot be fetched yet
        raise Problem(
            503,
            "The CRM cannot check the dashboard's token right now",
            answer.first_message() + " Reload the page in a few seconds.",
        )
    if not answer.authenticated:
        raise Problem(
            401,
            "The dashboard's token was not accepted",
            answer.first_message() + " Reload the page from the Saleor dashboard.",
        )
    forbidden = [e for e in answer.errors if e.get("extensions", {}).get("code") == "FORBIDDEN"]
    if forbidden:  # even beside other data: a page missing a part would mislead
        required = forbidden[0]["extensions"].get("required") or []
        raise Problem(
            403,
            "You do not have the permission to see this",
            f"Ask a shop administrator for {', '.join(required) or 'more permissions'}.",
        )
    if answer.data is None and not partial:
        raise Problem(400, "The CRM could not answer", answer.first_message())
    return answer
