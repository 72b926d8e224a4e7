"""Mailing throughput: rendered, consent-checked, tracked e-mails per second from one
worker (one event loop, like one Dramatiq worker process) into a local SMTP server,
against a raw `smtplib` loop sending ready-made messages to the same server in the same
run. Goals (issue #6 §5): ≥ 200 e-mails/s and ≥ 0.5× the raw loop.

Uses DATABASE_URL (a fresh SQLite file by default), migrated first; prints one JSON line:
{"bench": "mailings", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import smtplib
import socket
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Sink:
    """Counts what the SMTP server accepts, and how many of those are rendered, tracked
    mailings (a personal greeting, the one-click unsubscribe header, the open pixel)."""

    def __init__(self) -> None:
        self.count = 0
        self.rendered = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        content = envelope.content.replace(b"=\r\n", b"")  # quoted-printable soft breaks
        if b"List-Unsubscribe-Post:" in content and b"/l/o/" in content and b"Hello C" in content:
            self.rendered += 1
        return "250 OK"


TEMPLATE = {
    "": {
        "subject": "{{ customer.first_name }}, your cart misses you",
        "html": "<html><body><p>Hello {{ customer.first_name }},</p>"
        "{% if checkout %}<ul>{% for l in checkout.lines %}<li>{{ l.name }}</li>{% endfor %}"
        '</ul>{% endif %}<p><a href="https://shop.example/cart">Back to your cart</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>',
        "text": "Hello {{ customer.first_name }}, your cart: https://shop.example/cart\n"
        "Unsubscribe: {{ unsubscribe_url }}",
    }
}


async def _seed(count: int, smtp_url: str) -> tuple[int, list[int]]:
    from plugin.db.base import utcnow
    from plugin.db.engine import Database
    from plugin.kit.after_commit import unit_of_work
    from plugin.messaging.config import shop_settings
    from plugin.messaging.models import Channel, MessageTemplate
    from plugin.messaging.sending import MessageRequest, queue
    from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile
    from plugin.saleor.models import Installation
    from plugin.settings import Settings

    db = Database(Settings())
    now = utcnow()
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=f"http://bench.invalid/{uuid.uuid4().hex}/graphql/",
            app_id="bench",
            token_encrypted="x",
            jwks={"keys": []},
            installed_at=now,
        )
        session.add(installation)
        await session.flush()
        shop = await shop_settings(session, installation.id)
        shop.smtp_url, shop.quiet_start_hour, shop.quiet_end_hour = smtp_url, None, None
        shop.presets_created_at = now
        session.add(
            MessageTemplate(
                installation_id=installation.id,
                key="bench",
                name="bench",
                channel=Channel.EMAIL,
                contents=TEMPLATE,
            )
        )
        profiles = [
            Profile(installation_id=installation.id, email=f"c{i}@example.com", first_name=f"C{i}")
            for i in range(count)
        ]
        session.add_all(profiles)
        await session.flush()
        session.add_all(
            Identity(
                installation_id=installation.id,
                profile_id=p.id,
                kind=IdentityKind.EMAIL,
                value=p.email or "",
                marketing_consent=ConsentState.GRANTED,
                consent_updated_at=now,
            )
            for p in profiles
        )
        ids = []
        for p in profiles:
            message_id = await queue(
                session,
                MessageRequest(
                    installation.id, p.id, f"bench:{p.id}", Channel.EMAIL, "bench", True
                ),
                now,
            )
            assert message_id is not None
            ids.append(message_id)
        installation_id = installation.id
    await db.dispose()
    return installation_id, ids


async def _deliver_all(ids: list[int], concurrency: int) -> float:
    """What one worker does with a burst: the send jobs' batches (`send_message` takes its
    message and everything else of the shop that is due), `concurrency` jobs at a time."""
    from plugin.context import AppContext
    from plugin.messaging.sending import deliver_with_due
    from plugin.settings import Settings

    ctx = AppContext.create(Settings())
    await ctx.open()
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for message_id in ids:
        jobs.put_nowait(message_id)

    async def worker() -> None:
        while not jobs.empty():
            await deliver_with_due(ctx, jobs.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await ctx.close()
    return elapsed


def _raw_loop(port: int, count: int) -> float:
    messages = []
    for i in range(count):
        message = EmailMessage()
        message["From"], message["To"] = "shop@localhost", f"raw{i}@example.com"
        message["Subject"] = f"C{i}, your cart misses you"
        message.set_content(f"Hello C{i}, your cart: https://shop.example/cart")
        message.add_alternative(f"<p>Hello C{i}</p>", subtype="html")
        messages.append(message)
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for message in messages:
            client.send_message(message)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=int(os.environ.get("BENCH_EMAILS", 2000)))
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench-mailings.sqlite3"
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    from aiosmtpd.controller import Controller

    from plugin.db.migrate import upgrade

    upgrade(os.environ["DATABASE_URL"])
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        raw = _raw_loop(port, args.emails)
        _, ids = asyncio.run(_seed(args.emails, f"smtp://127.0.0.1:{port}"))
        before, rendered_before = sink.count, sink.rendered
        app = asyncio.run(_deliver_all(ids, args.concurrency))
        delivered, rendered = sink.count - before, sink.rendered - rendered_before
    finally:
        controller.stop()
    app_rate, raw_rate = delivered / app, args.emails / raw
    print(
        json.dumps(
            {
                "bench": "mailings",
                "database": os.environ["DATABASE_URL"].split(":", 1)[0],
                "emails": args.emails,
                "delivered": delivered,
                "rendered": rendered,
                "concurrency": args.concurrency,
                "rendered_emails_per_s": round(app_rate, 1),
                "raw_smtplib_per_s": round(raw_rate, 1),
                "ratio": round(app_rate / raw_rate, 3),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "goal_met": rendered == args.emails
                and app_rate >= 200
                and app_rate >= 0.5 * raw_rate,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
