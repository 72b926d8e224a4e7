"""Reading messaging: templates, flows (with stats), a customer's messages, previews."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput, NotFound
from plugin.api.fields import field as api_field
from plugin.api.ids import from_global_id
from plugin.api.pagination import page_size
from plugin.api.types.messaging import (
    FlowStats,
    FlowStepStats,
    FlowUplift,
    Message,
    MessageFlow,
    MessageTemplate,
    MessagingSettings,
    RenderedMessage,
)
from plugin.messaging import models
from plugin.messaging.config import pacing_of, shop_settings
from plugin.messaging.preview import preview_variables, template_of
from plugin.messaging.stats import flow_stats
from plugin.messaging.templates import TemplateProblem, render_in_thread, validate_contents
from plugin.profiles.models import Profile


async def flow_by_key(session: AsyncSession, installation_id: int, key: str) -> models.Flow:
    flow = await session.scalar(
        select(models.Flow).where(
            models.Flow.installation_id == installation_id, models.Flow.key == key
        )
    )
    if flow is None:
        raise NotFound(f"No flow {key!r}.", field="key")
    return flow


def template_error(problem: TemplateProblem, field: str = "contents") -> InvalidInput:
    return InvalidInput(
        f"Template {problem}", field=field, locale=problem.locale, part=problem.part
    )


@strawberry.type
class MessagingQueries:
    @api_field("Every message template of the shop, by key. Needs MANAGE_USERS.")
    async def message_templates(self, info: Info) -> list[MessageTemplate]:
        viewer = info.context.require(*permissions.CUSTOMERS)
        rows = await info.context.scalars(
            select(models.MessageTemplate)
            .where(models.MessageTemplate.installation_id == viewer.installation_id)
            .order_by(models.MessageTemplate.key)
        )
        return [MessageTemplate.of(r) for r in rows]

    @api_field("Every flow of the shop (presets included, off until switched on).")
    async def message_flows(self, info: Info) -> list[MessageFlow]:
        viewer = info.context.require(*permissions.CUSTOMERS)
        rows = await info.context.scalars(
            select(models.Flow)
            .where(models.Flow.installation_id == viewer.installation_id)
            .order_by(models.Flow.key)
        )
        return [MessageFlow.of(r) for r in rows]

    @api_field("One message template by key. Needs MANAGE_USERS.")
    async def message_template(self, info: Info, key: str) -> MessageTemplate:
        viewer = info.context.require(*permissions.CUSTOMERS)
        row = await info.context.scalar(
            select(models.MessageTemplate).where(
                models.MessageTemplate.installation_id == viewer.installation_id,
                models.MessageTemplate.key == key,
            )
        )
        if row is None:
            raise NotFound(f"No template {key!r}.", field="key")
        return MessageTemplate.of(row)

    @api_field("One flow by key. Needs MANAGE_USERS.")
    async def message_flow(self, info: Info, key: str) -> MessageFlow:
        viewer = info.context.require(*permissions.CUSTOMERS)
        row = await info.context.scalar(
            select(models.Flow).where(
                models.Flow.installation_id == viewer.installation_id, models.Flow.key == key
            )
        )
        if row is None:
            raise NotFound(f"No flow {key!r}.", field="key")
        return MessageFlow.of(row)

    @api_field("A flow's results per step and variant, and its holdout uplift.")
    async def message_flow_stats(self, info: Info, key: str) -> FlowStats:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS, *permissions.ORDERS)

        async def compute(session: AsyncSession) -> FlowStats:
            flow = await flow_by_key(session, viewer.installation_id, key)
            steps, uplift = await flow_stats(session, viewer.installation_id, flow.id)
            return FlowStats(
                steps=[FlowStepStats.of(s) for s in steps], holdout=FlowUplift.of(uplift)
            )

        return await ctx.run(compute)

    @api_field("A customer's messages, newest first: sent, postponed, skipped and why.")
    async def customer_messages(
        self, info: Info, customer_id: strawberry.ID, first: int | None = None
    ) -> list[Message]:
        viewer = info.context.require(*permissions.CUSTOMERS)
        pk = from_global_id("Customer", customer_id, field="customerId")
        rows = await info.context.scalars(
            select(models.Message)
            .where(
                models.Message.installation_id == viewer.installation_id,
                models.Message.profile_id == pk,
            )
            .order_by(models.Message.id.desc())
            .limit(page_size(first))
        )
        return [Message.of(r) for r in rows]

    @api_field("The shop's messaging settings.")
    async def messaging_settings(self, info: Info) -> MessagingSettings:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)

        async def read(session: AsyncSession) -> MessagingSettings:
            row = await shop_settings(session, viewer.installation_id)
            return MessagingSettings.of(row, pacing_of(row).caps)

        return await ctx.run(read)

    @api_field(
        "Render a template (stored by `key`, or unsaved `contents`) with a real customer's "
        "data (or a sample customer): subject, HTML and text."
    )
    async def message_template_preview(
        self,
        info: Info,
        key: str | None = None,
        contents: JSON | None = None,
        customer_id: strawberry.ID | None = None,
        language: str | None = None,
    ) -> RenderedMessage:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        if (key is None) == (contents is None):
            raise InvalidInput("Give either `key` or `contents`.", field="key")
        pk = (
            from_global_id("Customer", customer_id, field="customerId")
            if customer_id is not None
            else None
        )

        async def gather(session: AsyncSession) -> tuple[dict[str, Any], dict[str, Any], str]:
            try:
                if key is not None:
                    raw: dict[str, Any] = (
                        await template_of(session, viewer.installation_id, key)
                    ).contents
                else:
                    raw = validate_contents(contents, needs_subject=False)
            except TemplateProblem as problem:
                raise template_error(problem) from None
            profile = None
            if pk is not None:
                profile = await session.get(Profile, pk)
                if profile is None or profile.installation_id != viewer.installation_id:
                    raise NotFound("No such customer.", field="customerId")
            variables = await preview_variables(session, ctx.app, viewer.installation_id, profile)
            # End the read before rendering: on SQLite a transaction holds the write lock,
            # which every other request (and /healthz) would wait for during the render.
            await session.commit()
            return raw, variables, language or (profile.language if profile else None) or ""

        raw, variables, locale = await ctx.run(gather)
        try:
            shown = await render_in_thread(raw, locale or None, variables)
        except TemplateProblem as problem:
            raise template_error(problem) from None
        return RenderedMessage(
            subject=shown.subject, html=shown.html, text=shown.text, locale=shown.locale
        )
