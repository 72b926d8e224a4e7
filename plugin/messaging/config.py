"""A shop's messaging set-up (row made on first use) and the providers built from it."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.kit.crypto import SecretBox
from plugin.messaging.channels import Provider
from plugin.messaging.channels.email import SmtpProvider, SmtpServer
from plugin.messaging.channels.sms import SmsGateway
from plugin.messaging.channels.telegram import DEFAULT_API, TelegramBot
from plugin.messaging.models import Channel, MessagingSettings
from plugin.messaging.pacing import DEFAULT_CAPS, Pacing
from plugin.settings import Settings
from plugin.timeline.models import TimelineEntry


class NotConfigured(Exception):
    """The shop has not set this channel up (a step fails visibly, with this reason)."""


async def shop_settings(session: AsyncSession, installation_id: int) -> MessagingSettings:
    row = await session.scalar(
        select(MessagingSettings).where(MessagingSettings.installation_id == installation_id)
    )
    if row is None:
        # Flows start from now: a shop's history never triggers messages.
        newest = await session.scalar(
            select(func.max(TimelineEntry.id)).where(
                TimelineEntry.installation_id == installation_id
            )
        )
        await insert_ignore(
            session,
            MessagingSettings,
            {
                "installation_id": installation_id,
                "timezone": "UTC",
                "timeline_cursor": newest or 0,
            },
            conflict_columns=["installation_id"],
        )
        row = await session.scalar(
            select(MessagingSettings).where(MessagingSettings.installation_id == installation_id)
        )
        assert row is not None
    return row


def pacing_of(row: MessagingSettings) -> Pacing:
    return Pacing(
        timezone=row.timezone or "UTC",
        quiet_start_hour=row.quiet_start_hour,
        quiet_end_hour=row.quiet_end_hour,
        caps=row.caps if row.caps is not None else DEFAULT_CAPS,
        max_delay=timedelta(hours=row.max_delay_hours),
    )


def sender_of(row: MessagingSettings, settings: Settings) -> str:
    return row.sender_email or settings.messaging_sender_email


def provider_for(
    channel: Channel,
    row: MessagingSettings,
    settings: Settings,
    http: httpx.AsyncClient,
    box: SecretBox,
) -> Provider:
    if channel is Channel.EMAIL:
        url = row.smtp_url or settings.smtp_url
        if not url:
            raise NotConfigured("no SMTP server: set SMTP_URL or the shop's smtpUrl")
        return SmtpProvider(SmtpServer.parse(url), row.sender_name)
    if channel is Channel.SMS:
        if not (row.sms_gateway_url and row.sms_account and row.sms_secret_encrypted):
            raise NotConfigured("no SMS gateway set up for this shop")
        return SmsGateway(
            http,
            row.sms_gateway_url,
            row.sms_account,
            box.decrypt(row.sms_secret_encrypted),
            row.sms_sender or "",
        )
    if not row.telegram_token_encrypted:
        raise NotConfigured("no Telegram bot set up for this shop")
    return TelegramBot(
        http, box.decrypt(row.telegram_token_encrypted), row.telegram_api_url or DEFAULT_API
    )
