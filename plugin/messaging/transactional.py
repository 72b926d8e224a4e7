"""Transactional sends for other packages (parcel notifications, receipts).

Call inside your own transaction: the message is queued under your dedup key (at most
once per key, ever) and leaves after commit; consent is not needed, but erased or
bounced addresses are still never written to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.messaging.models import Channel
from plugin.messaging.sending import MessageRequest, queue


async def send_transactional(
    session: AsyncSession,
    *,
    installation_id: int,
    profile_id: int,
    template_key: str,
    dedup_key: str,
    now: datetime,
    channel: Channel = Channel.EMAIL,
    order_id: str | None = None,
    shipment: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> int | None:
    """Queue one transactional message; returns its id, or None if the key was used.
    The template sees `order` (by Saleor id), `shipment` (your dict) and `data`."""
    variables: dict[str, Any] = {"data": data or {}}
    if order_id:
        variables["order_id"] = order_id
    if shipment is not None:
        variables["shipment"] = shipment
    return await queue(
        session,
        MessageRequest(
            installation_id=installation_id,
            profile_id=profile_id,
            idempotency_key=f"tx:{dedup_key}",
            channel=channel,
            template_key=template_key,
            marketing=False,
            topic="transactional",
            variables=variables,
        ),
        now,
    )
