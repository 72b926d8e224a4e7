"""E-mail over SMTP with aiosmtplib: HTML and text parts, one-click unsubscribe headers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib

from plugin.messaging.channels import Outgoing, PermanentError, TransientError


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


def build_email(message: Outgoing, sender_name: str | None = None) -> EmailMessage:
    email = EmailMessage()
    email["From"] = formataddr((sender_name or "", message.sender))
    email["To"] = message.to
    email["Subject"] = message.subject
    domain = message.sender.rpartition("@")[2] or "localhost"
    email["Message-ID"] = message.message_id or make_msgid(domain=domain)
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.text or " ")
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email


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


class SmtpProvider:
    def __init__(self, server: SmtpServer, sender_name: str | None = None, timeout: float = 30):
        self.server = server
        self.sender_name = sender_name
        self.timeout = timeout

    async def send(self, message: Outgoing) -> str:
        email = build_email(message, self.sender_name)
        healthy = False
        try:
            client = await POOL.acquire(self.server, self.timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        try:
            await client.send_message(email)
            healthy = True
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
            if codes and all(code >= 500 for code in codes):
                raise PermanentError(f"recipient refused: {detail}") from error
            raise TransientError(f"recipient deferred: {detail}") from error
        except aiosmtplib.SMTPResponseException as error:
            if error.code >= 500 and error.code not in (421, 554):
                raise PermanentError(f"{error.code} {error.message}") from error
            raise TransientError(f"{error.code} {error.message}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        finally:
            POOL.release(self.server, client, healthy)
        return str(email["Message-ID"])
