"""Messaging in the API: templates, flows with their measured results, messages."""

from __future__ import annotations

import enum
from datetime import datetime
from urllib.parse import urlsplit

import strawberry
from strawberry.scalars import JSON

from plugin.api.fields import field as api_field
from plugin.api.ids import to_global_id
from plugin.api.types.common import Money
from plugin.messaging import models
from plugin.messaging.stats import Uplift, VariantStats


@strawberry.enum(description="How a message reaches the customer.")
class MessageChannel(enum.Enum):
    EMAIL = "email"
    SMS = "sms"
    TELEGRAM = "telegram"


@strawberry.enum(description="Where a message is: queued (maybe postponed), sent, failed…")
class MessageState(enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@strawberry.type(description="Subject, HTML and text per locale, rendered in a sandbox.")
class MessageTemplate:
    pk: strawberry.Private[int]
    key: str
    name: str
    channel: MessageChannel
    contents: JSON = strawberry.field(
        description='{"": {"subject", "html", "text"}, "fr": {…}}: "" is the fallback.'
    )
    preset: str | None
    updated_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("MessageTemplate", self.pk))

    @classmethod
    def of(cls, row: models.MessageTemplate) -> MessageTemplate:
        return cls(
            pk=row.id,
            key=row.key,
            name=row.name,
            channel=MessageChannel(row.channel.value),
            contents=JSON(row.contents),
            preset=row.preset,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A rendered template: what the customer would get.")
class RenderedMessage:
    subject: str
    html: str
    text: str
    locale: str


@strawberry.type(description="Results of one send step (and variant) of a flow.")
class FlowStepStats:
    step_index: int
    variant: str | None
    sent: int
    delivered: int
    opened: int
    clicked: int
    converted: int
    revenue: list[Money]
    p_value: float | None = strawberry.field(
        description="Two-proportion test of its conversion against the step's first variant."
    )

    @strawberry.field
    def conversion_rate(self) -> float | None:
        return self.converted / self.sent if self.sent else None

    @classmethod
    def of(cls, row: VariantStats) -> FlowStepStats:
        return cls(
            step_index=row.step_index,
            variant=row.variant,
            sent=row.sent,
            delivered=row.delivered,
            opened=row.opened,
            clicked=row.clicked,
            converted=row.converted,
            revenue=[Money(amount=a, currency=c) for c, a in sorted(row.revenue.items())],
            p_value=row.p_value,
        )


@strawberry.type(description="Runs that got messages against the held-out control group.")
class FlowUplift:
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int
    uplift: float | None = strawberry.field(description="Conversion rate difference.")
    p_value: float | None

    @classmethod
    def of(cls, row: Uplift) -> FlowUplift:
        return cls(
            treated=row.treated,
            treated_converted=row.treated_converted,
            holdout=row.holdout,
            holdout_converted=row.holdout_converted,
            uplift=row.uplift,
            p_value=row.p_value,
        )


@strawberry.type(description="A flow's measured results.")
class FlowStats:
    steps: list[FlowStepStats]
    holdout: FlowUplift


@strawberry.type(description="Trigger, steps, exit conditions and re-entry policy.")
class MessageFlow:
    pk: strawberry.Private[int]
    key: str
    name: str
    enabled: bool
    marketing: bool = strawberry.field(description="Marketing flows need consent.")
    topic: str = strawberry.field(description="What customers can unsubscribe from.")
    trigger: JSON
    steps: JSON
    exits: JSON
    reentry: str = strawberry.field(description="once, no_overlap, always or cooldown.")
    reentry_days: int
    holdout_percent: int
    preset: str | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("MessageFlow", self.pk))

    @classmethod
    def of(cls, row: models.Flow) -> MessageFlow:
        return cls(
            pk=row.id,
            key=row.key,
            name=row.name,
            enabled=row.enabled,
            marketing=row.marketing,
            topic=row.topic,
            trigger=JSON(row.trigger),
            steps=JSON(row.steps),
            exits=JSON(row.exits or {}),
            reentry=row.reentry,
            reentry_days=row.reentry_days,
            holdout_percent=row.holdout_percent,
            preset=row.preset,
        )


@strawberry.type(description="One message to one customer, and why it is where it is.")
class Message:
    pk: strawberry.Private[int]
    channel: MessageChannel
    state: MessageState
    template: str
    subject: str | None
    recipient: str | None
    variant: str | None
    flow_id: strawberry.ID | None
    step_index: int | None
    attempts: int
    error: str | None = strawberry.field(description="Why it failed or was skipped.")
    postponed_reason: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    converted_order_pk: strawberry.Private[int | None]
    revenue: Money | None = strawberry.field(
        description="The attributed order's total, when the message led to an order."
    )

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Message", self.pk))

    @api_field("The order placed within the attribution window after this message.")
    def converted_order_id(self) -> strawberry.ID | None:
        if self.converted_order_pk is None:
            return None
        return strawberry.ID(to_global_id("Order", self.converted_order_pk))

    @classmethod
    def of(cls, row: models.Message) -> Message:
        return cls(
            pk=row.id,
            channel=MessageChannel(row.channel.value),
            state=MessageState(row.status.value),
            template=row.template_key,
            subject=row.subject,
            recipient=row.recipient,
            variant=row.variant,
            flow_id=(
                strawberry.ID(to_global_id("MessageFlow", row.flow_id)) if row.flow_id else None
            ),
            step_index=row.step_index,
            attempts=row.attempts,
            error=row.error,
            postponed_reason=row.postponed_reason,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            opened_at=row.opened_at,
            clicked_at=row.clicked_at,
            converted_order_pk=row.converted_order_id,
            revenue=Money.of(row.revenue, row.currency),
        )


@strawberry.type(description="The shop's sender, time zone, quiet hours and caps.")
class MessagingSettings:
    sender_email: str | None
    sender_name: str | None
    smtp_url: str | None = strawberry.field(description="Without its password.")
    sms_gateway_url: str | None
    sms_configured: bool
    telegram_configured: bool
    timezone: str
    quiet_start_hour: int | None
    quiet_end_hour: int | None
    caps: JSON
    max_delay_hours: int
    attribution_days: int

    @classmethod
    def of(cls, row: models.MessagingSettings, caps: object) -> MessagingSettings:
        smtp = row.smtp_url
        if smtp:
            parts = urlsplit(smtp)
            if parts.password:
                smtp = smtp.replace(f":{parts.password}@", ":***@", 1)
        return cls(
            sender_email=row.sender_email,
            sender_name=row.sender_name,
            smtp_url=smtp,
            sms_gateway_url=row.sms_gateway_url,
            sms_configured=bool(row.sms_secret_encrypted),
            telegram_configured=bool(row.telegram_token_encrypted),
            timezone=row.timezone,
            quiet_start_hour=row.quiet_start_hour,
            quiet_end_hour=row.quiet_end_hour,
            caps=JSON(caps),
            max_delay_hours=row.max_delay_hours,
            attribution_days=row.attribution_days,
        )
