"""Request bodies under a limit, and JSON that cannot take the parser down.

Every route that reads a body goes through `read_body`: it refuses a declared
`Content-Length` over the limit before reading anything and stops reading the stream as
soon as the bytes received pass the limit (a chunked or lying body is cut short, never
held whole). `CloseUnreadBodies` makes the server drop a connection whose body was left
unread, instead of draining the rest of it.

`parse_json` measures the nesting depth with a linear scan before parsing: a document of
100,000 nested arrays is refused as invalid input, never a `RecursionError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    """The body passed its route's limit (answer 413 and close the connection)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit
        self.message = str(self)


class BadContentLength(Exception):
    """`Content-Length` is not a number (answer 400)."""

    message = "Invalid Content-Length header."


class InvalidJson(ValueError):
    """Not JSON, or JSON nested deeper than `MAX_JSON_DEPTH` (answer 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadContentLength()
        if int(declared) > limit:
            raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# A JSON string (escapes included), and anything that is not a bracket.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest, brackets inside strings not counted (linear)."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    steps: Iterable[int] = map(_STEP.__getitem__, brackets)
    return max(accumulate(steps), default=0)


def parse_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, but a body nested deeper than `max_depth` is InvalidJson too."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if nesting_depth(raw) > max_depth:
        raise InvalidJson(f"The JSON nests deeper than {max_depth} levels.")
    try:
        return json.loads(data)
    except RecursionError:  # not reached below the depth limit; kept as a last guard
        raise InvalidJson(f"The JSON nests deeper than {max_depth} levels.") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("The body is not valid JSON.") from None


class CloseUnreadBodies:
    """ASGI middleware: a response sent before its request body was read to the end
    carries `Connection: close`, so the server drops the connection rather than read
    (and discard) the rest of a body nobody wants, however large it is.

    A declared rest of at most `DRAIN_BYTES` is still drained (the server discards it,
    holding nothing): closing on a client that is still sending resets the connection,
    and the client may then lose the answer (413) it was given.
    """

    DRAIN_BYTES = 16 * 1024 * 1024

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").strip()
        unread: int | None = int(declared) if declared.isdigit() else None  # None: unknown
        if not declared and b"transfer-encoding" not in headers:
            unread = 0

        async def tracked_receive() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = 0
            elif unread is not None:
                unread = max(unread - len(message.get("body", b"")), 0)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                unread is None or unread > self.DRAIN_BYTES
            ):
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        await self.app(scope, tracked_receive, closing_send)
