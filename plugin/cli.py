"""`crm`: run, migrate and look after the CRM from a shell.

Every command reads the same configuration as the app (environment, `.env`). A mistake
(unknown shop or customer, missing setting) prints one line and exits with status 1, bad
usage with status 2 (click's convention); no traceback is shown for either.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from plugin.settings import Settings

T = TypeVar("T")
INSTALLATION = click.option(
    "--installation",
    "installation_id",
    type=int,
    help="Installation id (`crm installations list`); optional when one shop is installed.",
)


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


async def with_database(action: Callable[[Any], Awaitable[T]]) -> T:
    """Open the database for one command and always close it."""
    from plugin.db.engine import Database

    db = Database(Settings())
    try:
        return await action(db)
    finally:
        await db.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Saleor CRM administration: serve the app, run workers, import a shop's history,
    look after the inbox, answer GDPR requests.

    Configuration comes from the environment or a `.env` file (DATABASE_URL, REDIS_URL,
    SECRET_KEY, …), exactly as for the app.
    """


# -- running -----------------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Apply database migrations (DATABASE_URL)."""
    from plugin.db.migrate import upgrade

    upgrade(Settings().database_url)
    click.echo("database is at the latest migration")


@cli.command()
@click.option("--host", help="Interface to listen on (default HOST, 0.0.0.0).")
@click.option("--port", type=int, help="Port (default PORT, 8080).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the app over HTTP (without REDIS_URL, jobs run inside it)."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "plugin.app:app",
        host=host or settings.host,
        port=port or settings.port,
        proxy_headers=True,
    )


@cli.command()
@click.option("--processes", type=int, default=1, show_default=True)
@click.option("--threads", type=int, default=4, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq job workers (folds, imports, segment refresh, retention). Needs
    REDIS_URL; without it the jobs run inside `crm serve` and no worker is needed."""
    if not Settings().redis_url:
        raise click.ClickException(
            "REDIS_URL is not set: without Redis the jobs run inside `crm serve`"
        )
    dramatiq = shutil.which("dramatiq", path=os.path.dirname(sys.executable)) or shutil.which(
        "dramatiq"
    )
    if dramatiq is None:
        raise click.ClickException("the `dramatiq` command is not installed")
    argv = [dramatiq, "jobs.worker", "--processes", str(processes), "--threads", str(threads)]
    os.execv(dramatiq, argv)


# -- installations -------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.pass_context
def installations(ctx: click.Context) -> None:
    """The Saleor shops that installed the app."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_installations)


@installations.command("list")
def list_installations() -> None:
    """One line per shop: id, status, Saleor API URL, app id."""
    from sqlalchemy import select

    from plugin.saleor.models import Installation

    async def rows(db: Any) -> list[Installation]:
        async with db.session() as session:
            return list(await session.scalars(select(Installation).order_by(Installation.id)))

    found = run(with_database(rows))
    if not found:
        click.echo("no installations yet: install the app from the Saleor dashboard")
    for row in found:
        removed = f"\tremoved {row.removed_at:%Y-%m-%d}" if row.removed_at else ""
        click.echo(f"{row.id}\t{row.status.value}\t{row.saleor_api_url}\tapp {row.app_id}{removed}")


# -- import ----------------------------------------------------------------------------------


@cli.command("import")
@INSTALLATION
def import_history(installation_id: int | None) -> None:
    """Import the shop's customers, checkouts and orders from Saleor, with a progress bar.

    Resumes an interrupted import where it stopped; run again after it finished, it
    brings what changed since (nothing is folded twice). If a worker is already running
    the import, this follows its progress."""
    from plugin.console.import_command import import_with_progress

    status = run(with_database(lambda db: import_with_progress(db, Settings(), installation_id)))
    if status != "done":
        raise click.ClickException(f"the import ended {status}; `crm import` resumes it")


# -- segments --------------------------------------------------------------------------------


@cli.group()
def segments() -> None:
    """Segments, RFM and scores."""


@segments.command("refresh")
@INSTALLATION
def refresh_segments(installation_id: int | None) -> None:
    """Recompute RFM, scores and every segment now (the scheduled job does it every
    SEGMENTS_REFRESH_SECONDS). Segments never computed or whose rule changed go in chunks
    of SEGMENTS_FILL_CHUNK customers, with a progress bar."""
    from plugin.console.maintenance import refresh_all_segments

    chunk = Settings().segments_fill_chunk
    lines = run(
        with_database(lambda db: refresh_all_segments(db, installation_id, chunk_size=chunk))
    )
    for line in lines:
        click.echo(line)


# -- messages --------------------------------------------------------------------------------


@cli.command("send-test")
@click.option("--template", required=True, help="Template key (the mailings' templates).")
@click.option("--to", "recipient", required=True, help="Address (or number) to send to.")
@click.option(
    "--customer", "profile_id", type=int, help="Render with this customer's data (profile id)."
)
@INSTALLATION
def send_test(
    template: str, recipient: str, profile_id: int | None, installation_id: int | None
) -> None:
    """Send one message from a template to an address, to check how it looks."""
    from plugin.console.send_test import send_test_message

    click.echo(run(send_test_message(template, recipient, installation_id, profile_id)))


# -- inbox -----------------------------------------------------------------------------------


@cli.group()
def inbox() -> None:
    """The webhook inbox (raw events as Saleor sent them)."""


@inbox.command("replay")
@click.option(
    "--failed", is_flag=True, help="Replay failed events (default: events still waiting)."
)
@INSTALLATION
def replay_inbox(failed: bool, installation_id: int | None) -> None:
    """Fold inbox events again: those still waiting, or with --failed those that failed
    (after a fix was deployed). With REDIS_URL the workers fold them; without, this
    command folds them itself."""
    from plugin.console.maintenance import replay

    click.echo(
        run(with_database(lambda db: replay(db, failed=failed, installation_id=installation_id)))
    )


@cli.command("replay", hidden=True)
@INSTALLATION
@click.pass_context
def replay_alias(ctx: click.Context, installation_id: int | None) -> None:
    """Old name of `crm inbox replay --failed`."""
    ctx.invoke(replay_inbox, failed=True, installation_id=installation_id)


# -- customers -------------------------------------------------------------------------------


@cli.group()
def customer() -> None:
    """GDPR requests about one customer, found by e-mail."""


@customer.command("export")
@click.argument("email")
@INSTALLATION
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to a file."
)
def export_customer(email: str, installation_id: int | None, output: str | None) -> None:
    """Everything held on the customer as one JSON document (access request)."""
    from plugin.console.maintenance import export_by_email

    document = run(with_database(lambda db: export_by_email(db, email, installation_id)))
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        click.echo(f"written to {output}", err=True)
    else:
        click.echo(text)


@customer.command("anonymize")
@click.argument("email")
@INSTALLATION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def anonymize_customer(email: str, installation_id: int | None, yes: bool) -> None:
    """Erase the customer's personal data everywhere (cannot be undone). Orders and
    figures stay, anonymous; the address stays only as a hash, so nothing is ever sent
    to it again."""
    from plugin.console.maintenance import anonymize_by_email

    if not yes:
        click.confirm(f"Erase all personal data of {email}? This cannot be undone", abort=True)
    summary = run(with_database(lambda db: anonymize_by_email(db, email, installation_id)))
    click.echo(summary)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `crm` and `python -m plugin.cli`; returns the exit status."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        result = cli.main(args=argv, prog_name="crm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (OperationalError, DBAPIError, OSError) as exc:
        click.echo(f"Error: cannot use the database: {exc.__class__.__name__}: {exc}", err=True)
        return 1
    except ValueError as exc:  # configuration (e.g. an unsupported DATABASE_URL)
        click.echo(f"Error: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
