"""Preview and test-send a template with a real customer's data (or a sample customer).

A test send goes straight to the given address through the shop's channel, marked
"[Test]"; it is not a Message: it never counts for caps, stats or idempotency.
`send_test` is what `crm send-test --template … --to …` calls.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, Order
from plugin.context import AppContext
from plugin.kit.after_commit import unit_of_work
from plugin.messaging import variables as template_vars
from plugin.messaging.channels import Outgoing, Provider
from plugin.messaging.config import provider_for, sender_of, shop_settings
from plugin.messaging.models import Channel, MessageTemplate
from plugin.messaging.sending import links_for
from plugin.messaging.templates import Rendered, TemplateProblem, render_in_thread
from plugin.profiles.models import Profile

SAMPLE = Profile(
    id=0,
    installation_id=0,
    email="sample@example.com",
    first_name="Sam",
    last_name="Sample",
    language=None,
    orders_count=3,
    total_spent=Decimal("120.00"),
    currency="USD",
)


async def template_of(session: AsyncSession, installation_id: int, key: str) -> MessageTemplate:
    template = await session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.installation_id == installation_id, MessageTemplate.key == key
        )
    )
    if template is None:
        raise TemplateProblem("", "template", f"no template {key!r}")
    return template


async def preview_variables(
    session: AsyncSession,
    ctx: AppContext,
    installation_id: int,
    profile: Profile | None,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables for this customer (their latest checkout and order when the caller
    names none), with working preference links and no tracking."""
    links = links_for(ctx)
    who = profile or SAMPLE
    stored = dict(extra or {})
    if profile is not None:
        stored.setdefault("checkout_id", await _latest(session, profile, "checkout"))
        stored.setdefault("order_id", await _latest(session, profile, "order"))
    variables = await template_vars.build(session, who, stored)
    variables["unsubscribe_url"] = f"{links.base_url}/l/u/preview"
    variables["preferences_url"] = links.preferences(installation_id, who.id)
    return variables


async def preview(
    session: AsyncSession,
    ctx: AppContext,
    installation_id: int,
    contents: dict[str, Any],
    profile: Profile | None,
    *,
    language: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Rendered:
    """Render `contents` for this customer (see `preview_variables`), in a worker thread
    under the preview's budget."""
    variables = await preview_variables(session, ctx, installation_id, profile, extra=extra)
    who = profile or SAMPLE
    return await render_in_thread(contents, language or who.language, variables)


async def _latest(session: AsyncSession, profile: Profile, kind: str) -> str | None:
    model: Any = Checkout if kind == "checkout" else Order
    order_by = model.started_at if kind == "checkout" else model.placed_at
    found = await session.scalar(
        select(model.saleor_id)
        .where(model.profile_id == profile.id)
        .order_by(order_by.desc())
        .limit(1)
    )
    return str(found) if found is not None else None


async def prepare_test(
    session: AsyncSession,
    ctx: AppContext,
    installation_id: int,
    template_key: str,
    to: str,
    *,
    profile_id: int | None = None,
) -> tuple[Provider, Outgoing]:
    """The provider and the rendered test message (raises TemplateProblem, NotConfigured)."""
    template = await template_of(session, installation_id, template_key)
    profile = await session.get(Profile, profile_id) if profile_id is not None else None
    if profile is not None and profile.installation_id != installation_id:
        profile = None
    rendered = await preview(session, ctx, installation_id, template.contents, profile)
    shop = await shop_settings(session, installation_id)
    provider = provider_for(template.channel, shop, ctx.settings, ctx.http, ctx.box)
    subject = f"[Test] {rendered.subject}" if template.channel is Channel.EMAIL else ""
    outgoing = Outgoing(
        to=to,
        subject=subject,
        html=rendered.html,
        text=rendered.text,
        sender=sender_of(shop, ctx.settings),
    )
    return provider, outgoing


async def send_test(
    ctx: AppContext,
    installation_id: int,
    template_key: str,
    to: str,
    *,
    profile_id: int | None = None,
) -> str:
    """Render the template with a customer's data and send it to `to`; returns the
    provider's id. Raises TemplateProblem, NotConfigured, TransientError, PermanentError."""
    async with unit_of_work(ctx.db) as session:
        provider, outgoing = await prepare_test(
            session, ctx, installation_id, template_key, to, profile_id=profile_id
        )
    return await provider.send(outgoing)
