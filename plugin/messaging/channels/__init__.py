"""One provider interface for every channel; errors say whether a retry can help."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class TransientError(Exception):
    """The provider could not take the message now (network, 4xx SMTP, 5xx HTTP): retry."""


class PermanentError(Exception):
    """The provider refused the address for good (hard bounce, unknown number): stop."""


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
