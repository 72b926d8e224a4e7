"""One provider interface for every channel; errors say whether a retry can help."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class TransientError(Exception):
    """The provider could not take the message now (network, 4xx SMTP, 5xx HTTP): retry."""


class PermanentError(Exception):
    """The provider refused the address for good (hard bounce, unknown number): stop."""


class UnknownOutcome(Exception):
    """The connection broke while the message itself was on its way: it may have
    arrived, so it is never sent again (at most once) and fails as "outcome unknown"."""


@dataclass(frozen=True)
class Outgoing:
    to: str
    text: str
    subject: str = ""
    html: str = ""
    sender: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


class Provider(Protocol):
    async def send(self, message: Outgoing) -> str:
        """Hand over the message; returns the provider's id for it."""
        ...


Result = str | TransientError | PermanentError | UnknownOutcome


@runtime_checkable
class BatchProvider(Provider, Protocol):
    async def send_many(self, messages: Sequence[Outgoing]) -> list[Result]:
        """One result per message, in order: the provider's id or why it did not go."""
        ...


async def send_all(
    provider: Provider, messages: Sequence[Outgoing], parallel: int = 8
) -> list[Result]:
    """Hand over a batch: the provider's own batch send (SMTP: shared connections), or
    a few sends at a time (HTTP APIs); never raises for one message's failure."""
    if isinstance(provider, BatchProvider):
        return await provider.send_many(messages)
    gate = asyncio.Semaphore(parallel)

    async def one(message: Outgoing) -> Result:
        async with gate:
            try:
                return await provider.send(message)
            except (TransientError, PermanentError) as error:
                return error

    return list(await asyncio.gather(*(one(m) for m in messages)))
