"""`crm send-test`: one message from a shop's template to an address, through the shop's
configured channel, rendered with a real customer's data when one is named."""

from __future__ import annotations

import click

from plugin.console.lookup import describe, installation_for
from plugin.context import AppContext
from plugin.messaging.channels import PermanentError, TransientError
from plugin.messaging.config import NotConfigured
from plugin.messaging.preview import send_test
from plugin.messaging.templates import TemplateProblem
from plugin.settings import Settings


async def send_test_message(
    template_key: str, recipient: str, installation_id: int | None, profile_id: int | None
) -> str:
    ctx = AppContext.create(Settings())
    await ctx.open()
    try:
        async with ctx.db.session() as session:
            installation = await installation_for(session, installation_id)
        try:
            provider_id = await send_test(
                ctx, installation.id, template_key, recipient, profile_id=profile_id
            )
        except TemplateProblem as problem:
            raise click.ClickException(f"template {template_key!r}: {problem}") from None
        except NotConfigured as problem:
            raise click.ClickException(f"not configured: {problem}") from None
        except TransientError as problem:
            raise click.ClickException(f"not sent, try again: {problem}") from None
        except PermanentError as problem:
            raise click.ClickException(f"refused: {problem}") from None
        return f"sent {template_key!r} to {recipient} for {describe(installation)} ({provider_id})"
    finally:
        await ctx.close()
