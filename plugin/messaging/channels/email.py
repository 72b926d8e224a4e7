"""E-mail over SMTP with aiosmtplib: HTML and text parts, one-click unsubscribe headers."""

from __future__ import annotations

import asyncio
import binascii
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib

from plugin.messaging.channels import (
    Outgoing,
    PermanentError,
    Result,
    TransientError,
    UnknownOutcome,
)


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """`smtp://[user:pass@]host[:port]`, `smtp+starttls://…` or `smtps://…`."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError(f"an SMTP URL looks like smtp://host:port, not {url!r}")
        tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
            start_tls=True if parts.scheme == "smtp+starttls" else False,
        )


CRLF = "\r\n"


def _header(name: str, value: str) -> str:
    """One header line; non-ASCII or long values as RFC 2047 encoded words, folded.
    A value with a line break is refused (ValueError): no header injection through a
    customer's data."""
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"the {name} header holds a line break")
    if value.isascii() and len(name) + len(value) < 900:
        return f"{name}: {value}{CRLF}"
    charset = "us-ascii" if value.isascii() else "utf-8"
    folded = Header(value, charset, header_name=name).encode(linesep=CRLF)
    return f"{name}: {folded}{CRLF}"


def _body(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF lines: 7-bit, ≤ 76 characters a line,
    and never holding a `=_` boundary (QP writes `=` as `=3D`)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(lines.encode(), istext=True).replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
    )
    return head.encode() + _body(text)


def compose(message: Outgoing, sender_name: str | None = None) -> tuple[str, bytes]:
    """The Message-ID and the wire bytes of a text (+ HTML alternative) e-mail.

    Written directly (headers, quoted-printable parts) rather than through the `email`
    package, whose generator cost more per message than the SMTP exchange itself."""
    domain = message.sender.rpartition("@")[2] or "localhost"
    message_id = message.message_id or make_msgid(domain=domain)
    head = [
        _header("From", formataddr((sender_name or "", message.sender), "utf-8")),
        _header("To", message.to),
        _header("Subject", message.subject),
        _header("Date", formatdate(usegmt=True)),
        _header("Message-ID", message_id),
        *(_header(name, value) for name, value in message.headers.items()),
        f"MIME-Version: 1.0{CRLF}",
    ]
    if not message.html:
        return message_id, "".join(head).encode() + _part("plain", message.text or " ")
    boundary = f"=_crm_{secrets.token_hex(12)}"
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}')
    mark = f"{CRLF}--{boundary}{CRLF}".encode()
    body = (
        mark.removeprefix(CRLF.encode())
        + _part("plain", message.text or " ")
        + mark
        + _part("html", message.html)
        + f"{CRLF}--{boundary}--{CRLF}".encode()
    )
    return message_id, "".join(head).encode() + body


class ConnectionPool:
    """Open SMTP connections kept per server and event loop: a connection per message
    costs a TCP and SMTP handshake, more than sending the message itself. A connection
    idle for a while is checked with NOOP before use, never retried after a send began
    (that could deliver twice)."""

    def __init__(self, size: int = 4, check_after: float = 5.0) -> None:
        self.size, self.check_after = size, check_after
        self._idle: dict[tuple[int, SmtpServer], list[tuple[float, aiosmtplib.SMTP]]] = {}

    async def acquire(self, server: SmtpServer, timeout: float) -> aiosmtplib.SMTP:
        key = (id(asyncio.get_running_loop()), server)
        idle = self._idle.setdefault(key, [])
        while idle:
            since, client = idle.pop()
            if not client.is_connected:
                continue
            if time.monotonic() - since < self.check_after:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        client = aiosmtplib.SMTP(
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=timeout,
        )
        await client.connect()
        return client

    def release(self, server: SmtpServer, client: aiosmtplib.SMTP, healthy: bool) -> None:
        idle = self._idle.setdefault((id(asyncio.get_running_loop()), server), [])
        if healthy and client.is_connected and len(idle) < self.size:
            idle.append((time.monotonic(), client))
        else:
            client.close()


POOL = ConnectionPool()


def _failure(error: Exception) -> TransientError | PermanentError:
    """What a send's exception means: retry later, or never try this address again."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        detail = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
        if codes and all(code >= 500 for code in codes):
            return PermanentError(f"recipient refused: {detail}")
        return TransientError(f"recipient deferred: {detail}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        if error.code >= 500 and error.code not in (421, 554):
            return PermanentError(f"{error.code} {error.message}")
        return TransientError(f"{error.code} {error.message}")
    return TransientError(f"{type(error).__name__}: {error}")


SEND_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


async def _transaction(
    client: aiosmtplib.SMTP, message: Outgoing, message_id: str, data: bytes
) -> Result:
    """MAIL, RCPT, DATA for one message. A failure before DATA, or an error the server
    answers, means the message was not taken (retry or stop); a connection lost or a
    timeout while the message itself was on its way means it may have arrived, so it
    is never sent again (at most once)."""
    try:
        await client.mail(message.sender)
        await client.rcpt(message.to)
    except ValueError as error:  # an address SMTP cannot carry
        return PermanentError(f"cannot send to this address: {error}")
    except SEND_ERRORS as error:
        return _failure(error)
    try:
        await client.data(data)
    except aiosmtplib.SMTPResponseException as error:
        return _failure(error)
    except SEND_ERRORS as error:
        return UnknownOutcome(f"{type(error).__name__}: {error}")
    return message_id


class SmtpProvider:
    """Sends over pooled connections; a batch spreads over a few of them, each message
    after the other on its connection (no handshake per message)."""

    def __init__(
        self,
        server: SmtpServer,
        sender_name: str | None = None,
        timeout: float = 30,
        connections: int = 3,
    ):
        self.server = server
        self.sender_name = sender_name
        self.timeout = timeout
        self.connections = connections

    async def send(self, message: Outgoing) -> str:
        (result,) = await self.send_many([message])
        if isinstance(result, Exception):
            raise result
        return result

    async def send_many(self, messages: Sequence[Outgoing]) -> list[Result]:
        """One result per message, in order: its Message-ID or why it did not go."""
        results: list[Result] = [TransientError("not sent")] * len(messages)
        lanes = max(1, min(self.connections, len(messages) // 20 or 1))
        await asyncio.gather(
            *(self._lane(messages, range(i, len(messages), lanes), results) for i in range(lanes))
        )
        return results

    async def _lane(
        self, messages: Sequence[Outgoing], indices: range, results: list[Result]
    ) -> None:
        client: aiosmtplib.SMTP | None = None
        for index in indices:
            message = messages[index]
            try:
                message_id, data = compose(message, self.sender_name)
            except ValueError as error:
                results[index] = PermanentError(f"cannot compose the e-mail: {error}")
                continue
            if client is None:
                try:
                    client = await POOL.acquire(self.server, self.timeout)
                except SEND_ERRORS as error:  # the server is unreachable: the rest waits
                    for rest in indices[indices.index(index) :]:
                        results[rest] = TransientError(f"{type(error).__name__}: {error}")
                    return
            results[index] = await _transaction(client, message, message_id, data)
            if not isinstance(results[index], str):
                POOL.release(self.server, client, healthy=False)  # never reuse a confused one
                client = None
        if client is not None:
            POOL.release(self.server, client, healthy=True)
