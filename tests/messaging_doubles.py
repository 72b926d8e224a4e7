"""Real servers on loopback for the messaging tests: an aiosmtpd SMTP server, and HTTP
doubles speaking Twilio's Messages API and Telegram's Bot API. Plus small set-up helpers
(a customer with consent, a shop's messaging settings)."""

from __future__ import annotations

import asyncio
import base64
import email
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any, Self
from urllib.parse import parse_qs

import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.config import shop_settings
from plugin.messaging.models import Channel, MessageTemplate
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile
from tests.conftest import free_port


@dataclass
class SmtpInbox:
    """What the SMTP server received; `refuse` answers RCPT for an address with a code."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.arrived = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.arrived.set()
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = SmtpInbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class HttpDouble:
    """A Starlette app served by uvicorn on loopback in a thread."""

    def __init__(self, routes: list[Route]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("double did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class TwilioDouble(HttpDouble):
    """`POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, basic auth; 400 with
    code 21211 for numbers listed in `invalid`, 503 while `down` is set."""

    def __init__(self, account: str, secret: str) -> None:
        self.account, self.secret = account, secret
        self.sent: list[dict[str, str]] = []
        self.invalid: set[str] = set()
        self.down = False
        super().__init__(
            [Route("/2010-04-01/Accounts/{sid}/Messages.json", self._create, methods=["POST"])]
        )

    async def _create(self, request: Request) -> JSONResponse:
        expected = "Basic " + base64.b64encode(f"{self.account}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        if self.down:
            return JSONResponse({"code": 20500, "message": "Internal error"}, status_code=503)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("To") in self.invalid:
            message = f"The 'To' number {form['To']} is not a valid phone number."
            return JSONResponse({"code": 21211, "message": message, "status": 400}, 400)
        self.sent.append(form)
        sid = f"SM{len(self.sent):032d}"
        return JSONResponse({"sid": sid, "status": "queued", "to": form.get("To")}, 201)


class TelegramDouble(HttpDouble):
    """`POST /bot{token}/sendMessage` (JSON); chats in `blocked` answer 403 like Telegram."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.blocked: set[str] = set()
        super().__init__([Route("/bot{token}/sendMessage", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        body = await request.json()
        if str(body.get("chat_id")) in self.blocked:
            description = "Forbidden: bot was blocked by the user"
            return JSONResponse({"ok": False, "error_code": 403, "description": description}, 403)
        self.sent.append(body)
        result = {
            "message_id": len(self.sent),
            "chat": {"id": body["chat_id"]},
            "text": body["text"],
        }
        return JSONResponse({"ok": True, "result": result})


async def make_customer(
    db: Database,
    installation_id: int,
    email_address: str | None,
    *,
    consent: bool = True,
    phone: str | None = None,
    **fields: Any,
) -> int:
    async with unit_of_work(db) as session:
        profile = Profile(
            installation_id=installation_id, email=email_address, phone=phone, **fields
        )
        session.add(profile)
        await session.flush()
        state = ConsentState.GRANTED if consent else ConsentState.DENIED
        for kind, value in ((IdentityKind.EMAIL, email_address), (IdentityKind.PHONE, phone)):
            if value:
                session.add(
                    Identity(
                        installation_id=installation_id,
                        profile_id=profile.id,
                        kind=kind,
                        value=value,
                        marketing_consent=state,
                        consent_updated_at=utcnow(),
                        consent_source="test",
                    )
                )
        return profile.id


async def configure(db: Database, installation_id: int, **values: Any) -> None:
    """Set the shop's messaging settings; quiet hours are off unless given."""
    values.setdefault("quiet_start_hour", None)
    values.setdefault("quiet_end_hour", None)
    async with unit_of_work(db) as session:
        row = await shop_settings(session, installation_id)
        row.presets_created_at = row.presets_created_at or utcnow()  # no presets unless asked
        for name, value in values.items():
            setattr(row, name, value)


async def add_template(
    db: Database,
    installation_id: int,
    key: str,
    contents: dict[str, Any],
    channel: Channel = Channel.EMAIL,
) -> None:
    from plugin.messaging.templates import validate_contents

    async with unit_of_work(db) as session:
        exists = await session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.installation_id == installation_id, MessageTemplate.key == key
            )
        )
        cleaned = validate_contents(contents, needs_subject=channel is Channel.EMAIL)
        if exists is not None:
            exists.contents = cleaned
            return
        session.add(
            MessageTemplate(
                installation_id=installation_id,
                key=key,
                name=key,
                channel=channel,
                contents=cleaned,
            )
        )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
