"""The `crm` command line, run for real in a subprocess against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.inbox.models import InboxEvent, InboxStatus
from plugin.inbox.service import body_hash
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.models import Segment
from plugin.settings import Settings
from tests.conftest import RunningApp, eventually, new_installation
from tests.importing import count, shop_installation, shop_with_history
from tests.messaging_doubles import SmtpServer, add_template, configure
from tests.simulator import FakeShop

REPO = Path(__file__).resolve().parents[1]
CRM = REPO / ".venv" / "bin" / "crm"


def crm(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    command = [str(CRM)] if CRM.exists() else [sys.executable, "-m", "plugin.cli"]
    return subprocess.run(
        [*command, *args],
        cwd=REPO,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_every_command() -> None:
    result = crm("--help")
    assert result.returncode == 0
    for command in (
        "migrate",
        "serve",
        "worker",
        "import",
        "segments",
        "send-test",
        "inbox",
        "customer",
        "installations",
    ):
        assert f"  {command} " in result.stdout
    export = crm("customer", "export", "--help")
    assert export.returncode == 0
    assert "--installation" in export.stdout
    assert "--output" in export.stdout


def test_usage_mistakes_exit_2_without_traceback() -> None:
    assert_clean_error(crm("bogus"), 2, "No such command 'bogus'")
    assert_clean_error(crm("customer", "export"), 2, "Missing argument 'EMAIL'")
    assert_clean_error(crm("import", "--installation", "one"), 2, "'one' is not a valid integer")


def test_migrate_through_python_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plugin.cli", "migrate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "latest migration" in result.stdout


def test_an_unreachable_database_is_one_clear_line() -> None:
    result = crm("installations", "list", DATABASE_URL="postgresql://nobody@127.0.0.1:9/nowhere")
    assert_clean_error(result, 1, "cannot use the database")


def test_worker_needs_redis() -> None:
    assert_clean_error(crm("worker", REDIS_URL=""), 1, "REDIS_URL is not set")


async def test_send_test_renders_a_template_and_sends_it(db: Database) -> None:
    installation_id = await new_installation(db)
    with SmtpServer() as smtp:
        await configure(db, installation_id, smtp_url=smtp.url, sender_email="shop@example.com")
        await add_template(
            db, installation_id, "welcome", {"": {"subject": "Hi", "text": "Hello from the CLI"}}
        )
        sent = crm(
            "send-test",
            "--installation",
            str(installation_id),
            "--template",
            "welcome",
            "--to",
            "tester@example.com",
        )
        assert sent.returncode == 0, sent.stderr
        assert "sent 'welcome' to tester@example.com" in sent.stdout
        (mail,) = smtp.inbox.to("tester@example.com")
        assert mail["Subject"] == "[Test] Hi"
        body = mail.get_body(("plain",))
        assert body is not None
        assert "Hello from the CLI" in body.get_content()

        missing = crm(
            "send-test",
            "--installation",
            str(installation_id),
            "--template",
            "nope",
            "--to",
            "tester@example.com",
        )
        assert_clean_error(missing, 1, "nope")
        assert len(smtp.inbox.to("tester@example.com")) == 1


async def test_import_shows_progress_and_lists_installations(
    saleor: Any, db: Database, settings: Settings
) -> None:
    saleor.shop = shop_with_history(customers=3, guest_orders=2)
    installation_id = await shop_installation(db, saleor, settings)

    listed = crm("installations", "list")
    assert listed.returncode == 0
    assert f"{installation_id}\tactive\t{saleor.api_url}" in listed.stdout

    result = crm("import", "--installation", str(installation_id), IMPORT_PAGE_SIZE="2")
    assert result.returncode == 0, result.stderr
    assert "100.0% 9/9" in result.stderr
    assert await count(db, Order, installation_id) == 5

    assert_clean_error(crm("import", "--installation", "999999"), 1, "no installation 999999")


async def test_customer_export_then_anonymize(
    saleor: Any, db: Database, settings: Settings, tmp_path: Path
) -> None:
    saleor.shop = shop_with_history(customers=1, guest_orders=0)
    installation_id = await shop_installation(db, saleor, settings)
    assert crm("import", "--installation", str(installation_id)).returncode == 0
    shop = str(installation_id)

    exported = crm("customer", "export", "BUYER0@example.com", "--installation", shop)
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert document["profile"]["email"] == "buyer0@example.com"
    assert len(document["orders"]) == 1
    to_file = tmp_path / "export.json"
    written = crm(
        "customer", "export", "buyer0@example.com", "--installation", shop, "--output", str(to_file)
    )
    assert written.returncode == 0
    assert json.loads(to_file.read_text())["profile"]["first_name"] == "Ann0"

    refused = crm("customer", "anonymize", "buyer0@example.com", "--installation", shop)
    assert_clean_error(refused, 1, "aborted")  # no confirmation on stdin
    erased = crm("customer", "anonymize", "buyer0@example.com", "--installation", shop, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "anonymized: 3 identities, 1 orders" in erased.stdout  # user id, e-mail, phone
    gone = crm("customer", "export", "buyer0@example.com", "--installation", shop)
    assert_clean_error(gone, 1, "no customer with e-mail buyer0@example.com")
    assert_clean_error(crm("customer", "export", "not-an-email"), 1, "is not an e-mail address")


async def test_inbox_replay_of_failed_events(app_server: RunningApp, db: Database) -> None:
    installation_id = await new_installation(db)
    event = FakeShop().create_order(email="replay@example.com", lines=[("Mug", "M", "K", 1, 3.0)])[
        0
    ]
    async with unit_of_work(db) as session:
        row = InboxEvent(
            installation_id=installation_id,
            event_type=event.event_type,
            body_sha256=body_hash(event.body),
            body=event.body.decode(),
            issued_at=event.issued_at,
            received_at=utcnow(),
            status=InboxStatus.FAILED,
            attempts=8,
            last_error="RuntimeError: a bug since fixed",
        )
        session.add(row)
        await session.flush()
        event_id = row.id

    nothing = crm("inbox", "replay", "--installation", str(installation_id))
    assert nothing.returncode == 0
    assert "no waiting events to replay" in nothing.stdout
    result = crm("inbox", "replay", "--failed", "--installation", str(installation_id))
    assert result.returncode == 0, result.stderr
    assert "1" in result.stdout

    async def folded() -> bool:
        async with db.session() as session:
            status = await session.scalar(
                select(InboxEvent.status).where(InboxEvent.id == event_id)
            )
        return status is InboxStatus.DONE

    assert await eventually(folded)
    assert await count(db, Order, installation_id) == 1


async def test_segments_refresh_shows_the_progress_of_waiting_segments(db: Database) -> None:
    """A segment saved on a large shop is computed in chunks, with a progress line."""
    installation_id = await new_installation(db)
    async with unit_of_work(db) as session:
        session.add_all(
            Profile(installation_id=installation_id, email=f"p{n}@example.com", orders_count=n)
            for n in range(7)
        )
        session.add(
            Segment(
                installation_id=installation_id,
                key="buyers",
                name="Buyers",
                rule={"field": "orders_count", "op": "gte", "value": 1},
            )
        )
    result = crm(
        "segments", "refresh", "--installation", str(installation_id), SEGMENTS_FILL_CHUNK="2"
    )
    assert result.returncode == 0, result.stderr
    assert "[##############################] 100.0% 7/7" in result.stderr
    async with db.session() as session:
        segment = await session.scalar(
            select(Segment).where(
                Segment.installation_id == installation_id, Segment.key == "buyers"
            )
        )
        assert segment is not None
        assert segment.refreshed_at is not None
        assert segment.member_count == 6


async def test_segments_refresh(db: Database) -> None:
    installation_id = await new_installation(db)
    result = crm("segments", "refresh", "--installation", str(installation_id))
    assert result.returncode == 0, result.stderr
    assert f"installation {installation_id}: " in result.stdout
    assert "segments refreshed" in result.stdout
