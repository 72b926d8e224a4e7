"""SMS (Twilio's Messages API) and Telegram (Bot API) through loopback doubles that
speak those APIs: delivery, consent per channel, transient and permanent failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from plugin.context import AppContext
from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Message, MessageStatus
from plugin.messaging.sending import MessageRequest, deliver, queue
from plugin.settings import Settings
from tests.conftest import new_installation
from tests.messaging_doubles import (
    TelegramDouble,
    TwilioDouble,
    add_template,
    configure,
    make_customer,
)

LATER = utcnow() + timedelta(days=366)  # see test_messaging_send: out of the app's reach
SHORT = {"": {"text": "Hi {{ customer.first_name }}, your code: {{ promo_code }}"}}


@pytest.fixture
def twilio() -> Iterator[TwilioDouble]:
    with TwilioDouble("AC0123", "s3cret") as double:
        yield double


@pytest.fixture
def telegram() -> Iterator[TelegramDouble]:
    with TelegramDouble("123:abc") as double:
        yield double


@pytest.fixture
async def app_ctx() -> AsyncIterator[AppContext]:
    ctx = AppContext.create(Settings())
    await ctx.open()
    yield ctx
    await ctx.close()


async def _send(
    db: Database, ctx: AppContext, installation_id: int, profile_id: int, channel: Channel, key: str
) -> Message:
    async with unit_of_work(db) as session:
        message_id = await queue(
            session,
            MessageRequest(
                installation_id=installation_id,
                profile_id=profile_id,
                idempotency_key=key,
                channel=channel,
                template_key=f"short-{channel.value}",
                marketing=True,
                variables={"promo_code": "SMS10"},
            ),
            LATER,
        )
    assert message_id is not None
    await deliver(ctx, message_id, now=LATER)
    async with db.session() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


async def test_sms_through_a_twilio_style_gateway(
    db: Database, twilio: TwilioDouble, app_ctx: AppContext
) -> None:
    installation_id = await new_installation(db)
    await configure(
        db,
        installation_id,
        sms_gateway_url=twilio.base_url,
        sms_account="AC0123",
        sms_secret_encrypted=app_ctx.box.encrypt("s3cret"),
        sms_sender="+15005550006",
    )
    await add_template(db, installation_id, "short-sms", SHORT, Channel.SMS)
    ana = await make_customer(db, installation_id, None, phone="+33612345678", first_name="Ana")
    sent = await _send(db, app_ctx, installation_id, ana, Channel.SMS, "sms-1")
    assert sent.status is MessageStatus.SENT
    assert sent.provider_id == "SM" + "1".zfill(32)
    assert twilio.sent == [
        {"To": "+33612345678", "From": "+15005550006", "Body": "Hi Ana, your code: SMS10"}
    ]

    no_consent = await make_customer(db, installation_id, None, phone="+33611111111", consent=False)
    skipped = await _send(db, app_ctx, installation_id, no_consent, Channel.SMS, "sms-2")
    assert skipped.error == "no marketing consent for sms"

    twilio.down = True
    busy = await make_customer(db, installation_id, None, phone="+33622222222", first_name="B")
    waiting = await _send(db, app_ctx, installation_id, busy, Channel.SMS, "sms-3")
    assert waiting.status is MessageStatus.QUEUED
    assert "503" in (waiting.error or "")
    twilio.down = False

    twilio.invalid.add("+33633333333")
    wrong = await make_customer(db, installation_id, None, phone="+33633333333", first_name="W")
    failed = await _send(db, app_ctx, installation_id, wrong, Channel.SMS, "sms-4")
    assert failed.status is MessageStatus.FAILED
    assert "21211" in (failed.error or "")
    assert len(twilio.sent) == 1


async def test_telegram_bot_messages(
    db: Database, telegram: TelegramDouble, app_ctx: AppContext
) -> None:
    installation_id = await new_installation(db)
    await configure(
        db,
        installation_id,
        telegram_api_url=telegram.base_url,
        telegram_token_encrypted=app_ctx.box.encrypt("123:abc"),
    )
    await add_template(db, installation_id, "short-telegram", SHORT, Channel.TELEGRAM)
    consenting = {"telegram_chat_id": "4242", "marketing_consent_telegram": "true"}
    tom = await make_customer(
        db, installation_id, None, first_name="Tom", saleor_metadata=consenting
    )
    sent = await _send(db, app_ctx, installation_id, tom, Channel.TELEGRAM, "tg-1")
    assert sent.status is MessageStatus.SENT
    assert telegram.sent[0]["chat_id"] == "4242"
    assert telegram.sent[0]["text"] == "Hi Tom, your code: SMS10"

    silent = await make_customer(
        db, installation_id, None, saleor_metadata={"telegram_chat_id": "77"}
    )
    skipped = await _send(db, app_ctx, installation_id, silent, Channel.TELEGRAM, "tg-2")
    assert skipped.error == "no marketing consent for telegram"

    telegram.blocked.add("99")
    blocked = await make_customer(
        db,
        installation_id,
        None,
        first_name="B",
        saleor_metadata={"telegram_chat_id": "99", "marketing_consent_telegram": "true"},
    )
    failed = await _send(db, app_ctx, installation_id, blocked, Channel.TELEGRAM, "tg-3")
    assert failed.status is MessageStatus.FAILED
    assert "blocked" in (failed.error or "")
    assert len(telegram.sent) == 1


async def test_unconfigured_channel_fails_visibly(db: Database, app_ctx: AppContext) -> None:
    installation_id = await new_installation(db)
    await configure(db, installation_id)
    await add_template(db, installation_id, "short-sms", SHORT, Channel.SMS)
    ana = await make_customer(db, installation_id, None, phone="+33612345000", first_name="A")
    failed = await _send(db, app_ctx, installation_id, ana, Channel.SMS, "sms-x")
    assert failed.status is MessageStatus.FAILED
    assert failed.error == "no SMS gateway set up for this shop"
