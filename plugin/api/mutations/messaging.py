"""Editing messaging: templates, flows, the shop's settings, and test sends.

Configuration needs MANAGE_USERS + MANAGE_APPS. Templates are compiled in the sandbox and
flows validated before saving; every problem is INVALID_INPUT naming the part at fault.
"""

from __future__ import annotations

import re
from typing import Any

import strawberry
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import Conflict, InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import from_global_id
from plugin.api.queries.messaging import flow_by_key, template_error
from plugin.api.types.messaging import (
    MessageChannel,
    MessageFlow,
    MessageTemplate,
    MessagingSettings,
)
from plugin.messaging import models
from plugin.messaging.channels import PermanentError, TransientError
from plugin.messaging.channels.email import SmtpServer
from plugin.messaging.config import NotConfigured, pacing_of, shop_settings
from plugin.messaging.flows import (
    KEY,
    FlowError,
    validate_exits,
    validate_reentry,
    validate_steps,
    validate_trigger,
)
from plugin.messaging.pacing import validate_caps, zone
from plugin.messaging.preview import prepare_test
from plugin.messaging.templates import TemplateProblem, validate_contents

TOPIC = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@strawberry.input
class MessageTemplateInput:
    key: str = strawberry.field(description="Lower-case letters, digits, `-` and `_`.")
    name: str
    channel: MessageChannel = MessageChannel.EMAIL
    contents: JSON


@strawberry.input
class MessageTemplateUpdateInput:
    name: str | None = None
    contents: JSON | None = None


@strawberry.input
class MessageFlowInput:
    key: str
    name: str
    trigger: JSON
    steps: JSON
    exits: JSON | None = None
    marketing: bool = True
    topic: str = "offers"
    reentry: str = "no_overlap"
    reentry_days: int = 0
    holdout_percent: int = 0
    enabled: bool = False


@strawberry.input
class MessageFlowUpdateInput:
    name: str | None = None
    enabled: bool | None = None
    trigger: JSON | None = None
    steps: JSON | None = None
    exits: JSON | None = None
    marketing: bool | None = None
    topic: str | None = None
    reentry: str | None = None
    reentry_days: int | None = None
    holdout_percent: int | None = None


@strawberry.input
class MessagingSettingsInput:
    sender_email: str | None = None
    sender_name: str | None = None
    smtp_url: str | None = None
    sms_gateway_url: str | None = None
    sms_account: str | None = None
    sms_secret: str | None = None
    sms_sender: str | None = None
    telegram_api_url: str | None = None
    telegram_token: str | None = None
    timezone: str | None = None
    quiet_start_hour: int | None = None
    quiet_end_hour: int | None = None
    caps: JSON | None = None
    max_delay_hours: int | None = None
    attribution_days: int | None = None


@strawberry.type
class MessagingItemDeleted:
    key: str


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 256:
        raise InvalidInput("A name has 1 to 256 characters.", field="name")
    return name


def _key(key: str) -> str:
    if not KEY.match(key):
        raise InvalidInput("A key is 1-64 of a-z, 0-9, `-`, `_`.", field="key")
    return key


def _contents(raw: Any, channel: models.Channel) -> dict[str, Any]:
    try:
        return validate_contents(raw, needs_subject=channel is models.Channel.EMAIL)
    except TemplateProblem as problem:
        raise template_error(problem) from None


def _flow_error(error: FlowError) -> InvalidInput:
    return InvalidInput(error.message, field="flow", path=error.path)


async def _template(
    session: AsyncSession, installation_id: int, key: str
) -> models.MessageTemplate:
    row = await session.scalar(
        select(models.MessageTemplate).where(
            models.MessageTemplate.installation_id == installation_id,
            models.MessageTemplate.key == key,
        )
    )
    if row is None:
        raise NotFound(f"No template {key!r}.", field="key")
    return row


def _apply_flow(flow: models.Flow, values: dict[str, Any]) -> None:
    try:
        if values.get("trigger") is not None:
            flow.trigger = validate_trigger(values["trigger"])
        if values.get("steps") is not None:
            flow.steps = validate_steps(values["steps"])
        if "exits" in values:
            flow.exits = validate_exits(values["exits"])
        reentry = values.get("reentry") or flow.reentry
        days = values.get("reentry_days")
        days = flow.reentry_days if days is None else days
        validate_reentry(reentry, days)
    except FlowError as error:
        raise _flow_error(error) from None
    flow.reentry, flow.reentry_days = reentry, days
    holdout = values.get("holdout_percent")
    if holdout is not None:
        if not 0 <= holdout <= 50:
            raise InvalidInput("A holdout is 0 to 50 %.", field="holdoutPercent")
        flow.holdout_percent = holdout
    topic = values.get("topic")
    if topic is not None:
        if not TOPIC.match(topic) or topic in ("staff", "transactional", "*"):
            raise InvalidInput("A topic is 1-64 of a-z, 0-9, `-`, `_`.", field="topic")
        flow.topic = topic
    for name in ("marketing", "enabled"):
        if values.get(name) is not None:
            setattr(flow, name, values[name])
    if values.get("name") is not None:
        flow.name = _name(values["name"])


def _settings(row: models.MessagingSettings, data: MessagingSettingsInput, box: Any) -> None:
    if data.smtp_url is not None:
        if data.smtp_url:
            try:
                SmtpServer.parse(data.smtp_url)
            except ValueError as error:
                raise InvalidInput(str(error), field="smtpUrl") from None
        row.smtp_url = data.smtp_url or None
    if data.timezone is not None:
        if zone(data.timezone, "invalid").key != data.timezone:
            raise InvalidInput(f"Unknown time zone {data.timezone!r}.", field="timezone")
        row.timezone = data.timezone
    for name in ("quiet_start_hour", "quiet_end_hour"):
        value = getattr(data, name)
        if value is not None:
            if not 0 <= value <= 23:
                raise InvalidInput("An hour is 0 to 23.", field=name)
            setattr(row, name, value)
    if data.caps is not None:
        try:
            row.caps = validate_caps(data.caps)
        except ValueError as error:
            raise InvalidInput(str(error), field="caps") from None
    for name, low, high in (("max_delay_hours", 1, 24 * 30), ("attribution_days", 1, 90)):
        value = getattr(data, name)
        if value is not None:
            if not low <= value <= high:
                raise InvalidInput(f"{name} is {low} to {high}.", field=name)
            setattr(row, name, value)
    if data.sender_email is not None:
        if data.sender_email and "@" not in data.sender_email:
            raise InvalidInput("Not an e-mail address.", field="senderEmail")
        row.sender_email = data.sender_email or None
    for name in ("sender_name", "sms_gateway_url", "sms_account", "sms_sender", "telegram_api_url"):
        value = getattr(data, name)
        if value is not None:
            setattr(row, name, value or None)
    if data.sms_secret is not None:
        row.sms_secret_encrypted = box.encrypt(data.sms_secret) if data.sms_secret else None
    if data.telegram_token is not None:
        row.telegram_token_encrypted = (
            box.encrypt(data.telegram_token) if data.telegram_token else None
        )


@strawberry.type
class MessagingMutations:
    @api_mutation("Create a message template (compiled in the sandbox first).")
    async def message_template_create(
        self, info: Info, input: MessageTemplateInput
    ) -> MessageTemplate:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        channel = models.Channel(input.channel.value)
        row = models.MessageTemplate(
            installation_id=viewer.installation_id,
            key=_key(input.key),
            name=_name(input.name),
            channel=channel,
            contents=_contents(input.contents, channel),
        )
        try:
            async with ctx.write() as session:
                session.add(row)
                await session.flush()
        except IntegrityError:
            raise Conflict(f"A template {input.key!r} exists already.", field="key") from None
        return MessageTemplate.of(row)

    @api_mutation("Rename a template or change its contents.")
    async def message_template_update(
        self, info: Info, key: str, input: MessageTemplateUpdateInput
    ) -> MessageTemplate:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        async with ctx.write() as session:
            row = await _template(session, viewer.installation_id, key)
            if input.name is not None:
                row.name = _name(input.name)
            if input.contents is not None:
                row.contents = _contents(input.contents, row.channel)
            await session.flush()
        return MessageTemplate.of(row)

    @api_mutation("Delete a template (steps that use it then fail visibly).")
    async def message_template_delete(self, info: Info, key: str) -> MessagingItemDeleted:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        async with ctx.write() as session:
            await session.delete(await _template(session, viewer.installation_id, key))
        return MessagingItemDeleted(key=key)

    @api_mutation("Create a flow (validated; off unless `enabled`).")
    async def message_flow_create(self, info: Info, input: MessageFlowInput) -> MessageFlow:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        flow = models.Flow(
            installation_id=viewer.installation_id,
            key=_key(input.key),
            name=_name(input.name),
            reentry=input.reentry,
            reentry_days=input.reentry_days,
        )
        values = {k: getattr(input, k) for k in MessageFlowInput.__annotations__}
        values.pop("key")
        _apply_flow(flow, values)
        try:
            async with ctx.write() as session:
                session.add(flow)
                await session.flush()
        except IntegrityError:
            raise Conflict(f"A flow {input.key!r} exists already.", field="key") from None
        return MessageFlow.of(flow)

    @api_mutation("Change a flow, or switch it on or off.")
    async def message_flow_update(
        self, info: Info, key: str, input: MessageFlowUpdateInput
    ) -> MessageFlow:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        values = {
            k: getattr(input, k)
            for k in MessageFlowUpdateInput.__annotations__
            if getattr(input, k) is not None
        }
        async with ctx.write() as session:
            flow = await flow_by_key(session, viewer.installation_id, key)
            _apply_flow(flow, values)
            await session.flush()
        return MessageFlow.of(flow)

    @api_mutation("Delete a flow; its runs stop, its sent messages stay on the timeline.")
    async def message_flow_delete(self, info: Info, key: str) -> MessagingItemDeleted:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        async with ctx.write() as session:
            await session.delete(await flow_by_key(session, viewer.installation_id, key))
        return MessagingItemDeleted(key=key)

    @api_mutation("Set the sender, channels, time zone, quiet hours, caps and windows.")
    async def messaging_settings_update(
        self, info: Info, input: MessagingSettingsInput
    ) -> MessagingSettings:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        async with ctx.write() as session:
            row = await shop_settings(session, viewer.installation_id)
            _settings(row, input, ctx.app.box)
            await session.flush()
        return MessagingSettings.of(row, pacing_of(row).caps)

    @api_mutation(
        "Send a template, rendered with a customer's data, to an address of yours "
        "(marked [Test]; not counted anywhere). Returns the provider's message id."
    )
    async def message_template_test_send(
        self, info: Info, key: str, to: str, customer_id: strawberry.ID | None = None
    ) -> str:
        ctx = info.context
        viewer = ctx.require(*permissions.CONFIGURATION)
        to = to.strip()
        if not to or len(to) > 320:
            raise InvalidInput("Give the address to send the test to.", field="to")
        pk = from_global_id("Customer", customer_id, field="customerId") if customer_id else None
        try:
            async with ctx.write() as session:
                provider, outgoing = await prepare_test(
                    session, ctx.app, viewer.installation_id, key, to, profile_id=pk
                )
        except TemplateProblem as problem:
            raise template_error(problem, "key") from None
        except NotConfigured as error:
            raise InvalidInput(str(error), field="key") from None
        try:
            return await provider.send(outgoing)
        except (TransientError, PermanentError) as error:
            raise InvalidInput(f"The provider refused the test: {error}", field="to") from None
