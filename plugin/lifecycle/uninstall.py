"""What stops when a shop uninstalls the app (APP_DELETED), and what resumes on return.

The data stays for `UNINSTALL_RETENTION_DAYS` (a re-install within them finds everything
and catches up with an import), then the retention job purges it. Packages with work of
their own in flight (scheduled mailings, parcel polls) register a hook here, so they stop
with the shop without the platform layer knowing them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.importer.service import cancel_runs

logger = logging.getLogger(__name__)

UninstallHook = Callable[[AsyncSession, int], Awaitable[None]]
_HOOKS: dict[str, UninstallHook] = {}


def register_uninstall_hook(name: str, hook: UninstallHook) -> None:
    """`hook(session, installation_id)` runs in the transaction that marks the shop
    removed; it should cancel the package's pending work for that shop."""
    _HOOKS[name] = hook


async def stop_installation(session: AsyncSession, installation_id: int) -> None:
    """Stop the shop's jobs: imports now, and every registered package's own work.
    (Webhooks are refused from here on; scheduled refreshes skip removed shops.)"""
    cancelled = await cancel_runs(session, installation_id, "the app was uninstalled")
    if cancelled:
        logger.info("import cancelled by uninstall", extra={"installation_id": installation_id})
    for _name, hook in sorted(_HOOKS.items()):
        await hook(session, installation_id)
    # The one line that says a shop left (a JSON line with both fields, plugin/ops/logging).
    logger.info(
        "app uninstalled",
        extra={
            "installation_id": installation_id,
            "event": "app_deleted",
            "imports_cancelled": cancelled,
        },
    )
