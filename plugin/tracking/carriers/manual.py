"""The "manual" carrier: staff set the status (dashboard or Saleor metadata); no API."""

from __future__ import annotations

from collections.abc import Mapping

from plugin.tracking.carriers.base import (
    CarrierError,
    TrackingUpdate,
    WebhookEvent,
    WebhookRejected,
)

# Fulfillment metadata keys staff may set in Saleor's dashboard.
STATUS_KEY = "tracking_status"
TEXT_KEY = "tracking_status_text"


class ManualAdapter:
    name = "manual"

    async def poll(self, tracking_number: str) -> TrackingUpdate:
        raise CarrierError("the manual carrier is never polled", retryable=False)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        raise WebhookRejected("the manual carrier has no webhooks")

    def webhook_events(self, body: bytes) -> list[WebhookEvent]:
        raise WebhookRejected("the manual carrier has no webhooks")
