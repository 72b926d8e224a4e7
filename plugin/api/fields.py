"""Typed shorthands for described strawberry fields.

`strawberry.field(description=…)` used as a decorator hides the resolver's signature from
mypy; these keep it, so resolvers stay type-checked under `--strict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

F = TypeVar("F", bound=Callable[..., Any])


def field(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.field(description=description))


def mutation(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.mutation(description=description))
