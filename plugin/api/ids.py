"""Opaque global ids (`base64("Customer:42")`), as Saleor and Relay clients expect."""

from __future__ import annotations

import base64
import binascii

from plugin.api.errors import InvalidInput


def to_global_id(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


def from_global_id(kind: str, global_id: str, *, field: str = "id") -> int:
    """The primary key inside `global_id`; INVALID_INPUT when it is not a `kind` id."""
    try:
        decoded = base64.b64decode(global_id.encode(), validate=True).decode()
        prefix, _, raw = decoded.partition(":")
        if prefix != kind or not raw.isdigit() or len(raw) > 18:
            raise ValueError(decoded)
        return int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"{global_id!r} is not a {kind} id.", field=field) from None
