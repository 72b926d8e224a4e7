"""Flows and templates every shop gets, switched off until the merchant turns them on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.messaging.config import shop_settings
from plugin.messaging.flows import validate_exits, validate_steps, validate_trigger
from plugin.messaging.models import Channel, Flow, MessageTemplate
from plugin.messaging.templates import validate_contents

FOOTER_HTML = (
    '<p style="font-size:12px;color:#777"><a href="{{ preferences_url }}">Preferences</a> · '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)
FOOTER_TEXT = "\n\nPreferences: {{ preferences_url }}\nUnsubscribe: {{ unsubscribe_url }}"
LINES_HTML = (
    "<ul>{% for line in checkout.lines %}<li>{{ line.quantity }} × {{ line.name }}"
    '{% if line.image_url %} <img src="{{ line.image_url }}" alt="" width="64">{% endif %}'
    "</li>{% endfor %}</ul>"
)


def _email(subject: str, body_html: str, body_text: str, footer: bool = True) -> dict[str, Any]:
    return {
        "": {
            "subject": subject,
            "html": f"<html><body>{body_html}{FOOTER_HTML if footer else ''}</body></html>",
            "text": body_text + (FOOTER_TEXT if footer else ""),
        }
    }


HELLO = "Hello {{ customer.first_name or 'there' }},"
TEMPLATES: dict[str, tuple[str, dict[str, Any]]] = {
    "cart-reminder-1": (
        "Abandoned checkout: 1 h",
        _email(
            "You left something in your cart",
            f"<p>{HELLO}</p><p>Your cart is waiting:</p>{LINES_HTML}"
            '{% if checkout.restore_url %}<p><a href="{{ checkout.restore_url }}">Back to your'
            " cart</a></p>{% endif %}",
            f"{HELLO}\nYour cart is waiting.{{% if checkout.restore_url %}} "
            "{{ checkout.restore_url }}{% endif %}",
        ),
    ),
    "cart-reminder-2": (
        "Abandoned checkout: 24 h",
        _email(
            "Still thinking it over?",
            f"<p>{HELLO}</p><p>The items in your cart are still available.</p>{LINES_HTML}",
            f"{HELLO}\nThe items in your cart are still available.",
        ),
    ),
    "cart-reminder-3": (
        "Abandoned checkout: 72 h, with a promo code",
        _email(
            "A little something to help you decide",
            f"<p>{HELLO}</p><p>Use <strong>{{{{ promo_code }}}}</strong> on your cart.</p>"
            + LINES_HTML,
            f"{HELLO}\nUse {{{{ promo_code }}}} on your cart.",
        ),
    ),
    "review-request": (
        "Review request",
        _email(
            "How is your order{% if order %} #{{ order.number }}{% endif %}?",
            f"<p>{HELLO}</p><p>Your parcel arrived a few days ago. Tell us how you like it"
            " — and enjoy <strong>{{ promo_code }}</strong> on your next order.</p>",
            f"{HELLO}\nYour parcel arrived a few days ago. Tell us how you like it — and"
            " enjoy {{ promo_code }} on your next order.",
        ),
    ),
    "review-coupon-reminder": (
        "Review coupon reminder",
        _email(
            "Your coupon is still waiting",
            f"<p>{HELLO}</p><p><strong>{{{{ promo_code }}}}</strong> is still yours.</p>",
            f"{HELLO}\n{{{{ promo_code }}}} is still yours.",
        ),
    ),
    "win-back": (
        "Win-back",
        _email(
            "We miss you",
            f"<p>{HELLO}</p><p>It has been a while. Here is what is new:</p><ul>"
            "{% for item in recommendations %}<li>{{ item.name }}</li>{% endfor %}</ul>",
            f"{HELLO}\nIt has been a while.",
        ),
    ),
    "cross-sell": (
        "Cross-sell",
        _email(
            "Goes well with your last order",
            f"<p>{HELLO}</p><p>Customers who bought what you bought also liked:</p><ul>"
            "{% for item in recommendations %}<li>{{ item.name }}</li>{% endfor %}</ul>",
            f"{HELLO}\nCustomers who bought what you bought also liked:"
            "{% for item in recommendations %}\n- {{ item.name }}{% endfor %}",
        ),
    ),
    "vip-welcome": (
        "VIP welcome",
        _email(
            "Welcome to our VIP circle",
            f"<p>{HELLO}</p><p>Three orders — thank you! You are now a VIP.</p>",
            f"{HELLO}\nThree orders — thank you! You are now a VIP.",
        ),
    ),
    "vip-lapse": (
        "VIP discount about to lapse",
        _email(
            "Your VIP discount is about to lapse",
            f"<p>{HELLO}</p><p>Order soon to keep your VIP discount.</p>",
            f"{HELLO}\nOrder soon to keep your VIP discount.",
        ),
    ),
    "birthday": (
        "Birthday",
        _email(
            "Happy birthday, {{ customer.first_name or 'friend' }}!",
            "<p>Happy birthday! Here is <strong>{{ promo_code }}</strong> for you.</p>",
            "Happy birthday! Here is {{ promo_code }} for you.",
        ),
    ),
}
for _status in ("in_transit", "out_for_delivery", "available_for_pickup", "delivered"):
    _title = _status.replace("_", " ")
    TEMPLATES[f"shipment-{_status.replace('_', '-')}"] = (
        f"Parcel {_title}",
        _email(
            f"Your parcel is {_title}",
            f"<p>{HELLO}</p><p>Parcel {{{{ shipment.tracking_number }}}} "
            f"({{{{ shipment.carrier }}}}) is {_title}."
            "{% if shipment.pickup_point is defined and shipment.pickup_point %}"
            " Pick-up: {{ shipment.pickup_point }}"
            " {{ shipment.pickup_hours | default('') }}{% endif %}</p>",
            f"{HELLO}\nParcel {{{{ shipment.tracking_number }}}} is {_title}.",
            footer=False,
        ),
    )


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    exits: dict[str, Any] = field(default_factory=dict)
    topic: str = "offers"
    reentry: str = "no_overlap"
    reentry_days: int = 0
    marketing: bool = True


def _send(template: str, **extra: Any) -> dict[str, Any]:
    return {"type": "send", "channel": "email", "template": template, **extra}


PRESETS = (
    Preset(
        "abandoned-checkout",
        "Abandoned checkout series (1 h, 24 h, 72 h)",
        {"type": "checkout_abandoned"},
        [
            {"type": "wait", "hours": 1},
            _send("cart-reminder-1"),
            {"type": "wait", "hours": 23},
            _send("cart-reminder-2"),
            {"type": "wait", "hours": 48},
            _send("cart-reminder-3", promo_code="COMEBACK10"),
        ],
        {"ordered": True, "unsubscribed": True},
        topic="cart_reminders",
    ),
    Preset(
        "review-request",
        "Review request 3 days after delivery",
        {"type": "parcel_delivered"},
        [
            {"type": "wait", "days": 3},
            _send("review-request", promo_code="THANKS5"),
            {"type": "wait", "days": 7},
            _send("review-coupon-reminder", promo_code="THANKS5"),
        ],
        {"ordered": True, "unsubscribed": True},
        topic="reviews",
        reentry="always",
    ),
    Preset(
        "win-back",
        "Win-back after the shop's typical interval between orders (90 days until known)",
        {"type": "no_order_for_days", "days": "typical", "default_days": 90},
        [{"type": "wait", "until": "10:00"}, _send("win-back")],
        {"ordered": True},
        reentry="cooldown",
        reentry_days=90,
    ),
    Preset(
        "cross-sell",
        "Cross-sell 7 days after a purchase",
        {"type": "order_paid"},
        [{"type": "wait", "days": 7}, _send("cross-sell")],
        {"ordered": True},
        reentry="cooldown",
        reentry_days=30,
    ),
    Preset(
        "vip-welcome",
        "VIP welcome after the 3rd paid order",
        {
            "type": "order_paid",
            "filter": {"field": "paid_orders_count", "op": "gte", "value": 3},
        },
        [_send("vip-welcome")],
        reentry="once",
        topic="vip",
    ),
    Preset(
        "vip-lapse",
        "VIP discount will lapse: 3 months without an order",
        {"type": "no_order_for_days", "days": 90, "segment": "vip"},
        [{"type": "wait", "until": "10:00"}, _send("vip-lapse")],
        {"ordered": True},
        reentry="cooldown",
        reentry_days=90,
        topic="vip",
    ),
    Preset(
        "birthday",
        "Birthday (metadata `birthday`)",
        {"type": "date_field", "field": "birthday"},
        [{"type": "wait", "until": "09:00"}, _send("birthday", promo_code="BIRTHDAY")],
        topic="birthday",
        reentry="always",
    ),
    Preset(
        "shipment-updates",
        "Parcel status notifications (transactional)",
        {
            "type": "shipment_status",
            "statuses": ["in_transit", "out_for_delivery", "available_for_pickup", "delivered"],
        },
        [_send("shipment-{status}")],
        topic="transactional",
        reentry="always",
        marketing=False,
    ),
)


async def ensure_presets(session: AsyncSession, installation_id: int, now: datetime) -> int:
    """Create the preset templates and flows once per shop (disabled); returns how many
    were made. A merchant's edits and deletions are kept: presets are made only once."""
    shop = await shop_settings(session, installation_id)
    if shop.presets_created_at is not None:
        return 0
    made = 0
    for key, (name, contents) in TEMPLATES.items():
        made += bool(
            await insert_ignore(
                session,
                MessageTemplate,
                {
                    "installation_id": installation_id,
                    "key": key,
                    "name": name,
                    "channel": Channel.EMAIL,
                    "contents": validate_contents(contents, needs_subject=True),
                    "preset": key,
                    "created_at": now,
                    "updated_at": now,
                },
                conflict_columns=["installation_id", "key"],
            )
        )
    for preset in PRESETS:
        made += bool(
            await insert_ignore(
                session,
                Flow,
                {
                    "installation_id": installation_id,
                    "key": preset.key,
                    "name": preset.name,
                    "enabled": False,
                    "marketing": preset.marketing,
                    "topic": preset.topic,
                    "trigger": validate_trigger(preset.trigger),
                    "steps": validate_steps(preset.steps),
                    "exits": validate_exits(preset.exits),
                    "reentry": preset.reentry,
                    "reentry_days": preset.reentry_days,
                    "holdout_percent": 0,
                    "preset": preset.key,
                    "created_at": now,
                    "updated_at": now,
                },
                conflict_columns=["installation_id", "key"],
            )
        )
    shop.presets_created_at = now
    return made


async def preset_keys(session: AsyncSession, installation_id: int) -> list[str]:
    return list(
        await session.scalars(
            select(Flow.key).where(
                Flow.installation_id == installation_id, Flow.preset.is_not(None)
            )
        )
    )
