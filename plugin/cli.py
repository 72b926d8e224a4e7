"""`crm` command line: migrate, serve, inspect installations, replay the inbox."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy import select

from plugin.settings import Settings


def _migrate(args: argparse.Namespace) -> int:
    from plugin.db.migrate import upgrade

    upgrade(Settings().database_url)
    print("database is at the latest migration")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    uvicorn.run("plugin.app:app", host=settings.host, port=settings.port, proxy_headers=True)
    return 0


async def _installations() -> int:
    from plugin.db.engine import Database
    from plugin.saleor.models import Installation

    db = Database(Settings())
    async with db.session() as session:
        rows = list(await session.scalars(select(Installation).order_by(Installation.id)))
    await db.dispose()
    if not rows:
        print("no installations yet: install the app from the Saleor dashboard")
    for row in rows:
        print(f"{row.id}\t{row.status.value}\t{row.saleor_api_url}\tapp {row.app_id}")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    from jobs.runtime import install_dispatcher
    from plugin.db.engine import Database
    from plugin.inbox.service import replay
    from plugin.kit.after_commit import unit_of_work

    install_dispatcher()
    db = Database(Settings())
    async with unit_of_work(db) as session:
        ids = await replay(session, installation_id=args.installation)
    await db.dispose()
    print(f"{len(ids)} failed event(s) queued again")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm", description="Saleor CRM administration.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    commands.add_parser("serve", help="serve the app (HOST, PORT)").set_defaults(run=_serve)
    commands.add_parser("installations", help="list the Saleor shops that installed the app")
    replay = commands.add_parser("replay", help="queue failed inbox events again")
    replay.add_argument("--installation", type=int, help="only this installation id")
    args = parser.parse_args(argv)
    if args.command == "installations":
        return asyncio.run(_installations())
    if args.command == "replay":
        return asyncio.run(_replay(args))
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
