"""AfterShip Tracking API (2024-04) and its HMAC-signed webhooks.

AfterShip is the aggregator: its tags are already our normalised statuses. A number it
does not know yet is created first (POST), then read back (GET with `tracking_numbers`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from plugin.kit.bodies import parse_json
from plugin.tracking.carriers.base import (
    AccountConfig,
    BadSignature,
    CarrierError,
    CheckpointData,
    NotTracked,
    RateLimited,
    TrackingUpdate,
    WebhookEvent,
    WebhookRejected,
    parse_time,
    retry_after_seconds,
)
from plugin.tracking.statuses import Status

API_VERSION = "2024-04"
SIGNATURE_HEADER = "aftership-hmac-sha256"
TRACKING_EXISTS = 4003
# AfterShip reads at most 50 numbers per `GET /trackings?tracking_numbers=`.
BULK_SIZE = 50


def sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(webhook secret, raw body)), as AfterShip signs webhooks."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _status(tag: Any) -> Status:
    try:
        return Status(str(tag))
    except ValueError:
        return Status.PENDING


def _location(point: Mapping[str, Any]) -> str | None:
    parts = [point.get("location") or point.get("city"), point.get("country_region")]
    text = ", ".join(str(p) for p in parts if p)
    return text or None


def _edd(tracking: Mapping[str, Any]) -> Any:
    for key in ("courier_estimated_delivery_date", "aftership_estimated_delivery_date"):
        value = tracking.get(key)
        if isinstance(value, dict) and value.get("estimated_delivery_date"):
            return value["estimated_delivery_date"]
    return tracking.get("expected_delivery")


def to_update(tracking: Mapping[str, Any]) -> TrackingUpdate:
    """An AfterShip tracking object in our terms."""
    checkpoints = []
    for point in tracking.get("checkpoints") or []:
        moment = parse_time(point.get("checkpoint_time"))
        if moment is None:
            continue
        checkpoints.append(
            CheckpointData(
                occurred_at=moment,
                status=_status(point.get("tag")),
                sub_status=point.get("subtag"),
                carrier_status=point.get("raw_tag") or point.get("subtag"),
                message=str(point.get("message") or point.get("subtag_message") or "")[:1024],
                location=_location(point),
            )
        )
    last = max(checkpoints, key=lambda c: c.occurred_at) if checkpoints else None
    pickup = tracking.get("pickup_location")
    return TrackingUpdate(
        tracking_number=str(tracking.get("tracking_number") or ""),
        status=_status(tracking.get("tag")),
        sub_status=tracking.get("subtag"),
        carrier_status=tracking.get("subtag"),
        carrier_text=(last.message if last else tracking.get("subtag_message")),
        checkpoints=tuple(checkpoints),
        estimated_delivery=parse_time(_edd(tracking)),
        pickup_point=str(pickup) if pickup else None,
        pickup_hours=tracking.get("pickup_note"),
        destination_city=tracking.get("destination_city"),
        occurred_at=last.occurred_at if last else None,
    )


class AfterShipAdapter:
    name = "aftership"
    bulk_size = BULK_SIZE

    def __init__(self, http: httpx.AsyncClient, account: AccountConfig) -> None:
        self.http = http
        self.base = account.base_url.rstrip("/") + f"/tracking/{API_VERSION}"
        self.api_key = account.credentials.get("api_key", "")
        self.webhook_secret = account.credentials.get("webhook_secret", "")

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"as-api-key": self.api_key, "Content-Type": "application/json"}
        try:
            response = await self.http.request(method, self.base + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise CarrierError(f"AfterShip unreachable: {exc}") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        meta = body.get("meta") or {}
        if response.status_code == 429:
            raise RateLimited("AfterShip: too many requests", retry_after_seconds(response))
        if response.status_code >= 500:
            raise CarrierError(f"AfterShip answered HTTP {response.status_code}")
        if response.status_code >= 400:
            code = meta.get("code")
            if code == TRACKING_EXISTS:
                return body
            raise CarrierError(
                f"AfterShip {code}: {meta.get('message') or response.status_code}",
                retryable=response.status_code not in (401, 403),
            )
        return body

    async def poll_many(self, numbers: list[str]) -> dict[str, TrackingUpdate]:
        """One GET for up to `bulk_size` numbers (AfterShip's `tracking_numbers` takes a
        comma-separated list); numbers AfterShip does not track yet are left out."""
        body = await self._call(
            "GET",
            "/trackings",
            params={"tracking_numbers": ",".join(numbers), "limit": str(BULK_SIZE)},
        )
        found: dict[str, TrackingUpdate] = {}
        for tracking in (body.get("data") or {}).get("trackings") or []:
            if isinstance(tracking, dict):
                update = to_update(tracking)
                found.setdefault(update.tracking_number, update)
        return found

    async def register(self, tracking_number: str) -> TrackingUpdate:
        """Ask AfterShip to start tracking a number (POST); its first state."""
        created = await self._call(
            "POST", "/trackings", content=json.dumps({"tracking_number": tracking_number})
        )
        data: dict[str, Any] = created.get("data") or {}
        nested = data.get("tracking")  # 4003 "already exists" nests it
        tracking: dict[str, Any] = nested if isinstance(nested, dict) else data
        if not tracking.get("tracking_number"):
            raise NotTracked(f"AfterShip does not track {tracking_number} yet")
        return to_update(tracking)

    async def poll(self, tracking_number: str) -> TrackingUpdate:
        found = await self.poll_many([tracking_number])
        if tracking_number in found:
            return found[tracking_number]
        return await self.register(tracking_number)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signature = headers.get(SIGNATURE_HEADER, "")
        if not self.webhook_secret:
            raise BadSignature("no AfterShip webhook secret is configured")
        if not hmac.compare_digest(signature.encode(), sign(self.webhook_secret, body).encode()):
            raise BadSignature("bad aftership-hmac-sha256 signature")

    def webhook_events(self, body: bytes) -> list[WebhookEvent]:
        try:
            payload = parse_json(body)
        except ValueError as exc:
            raise WebhookRejected("the body is not JSON") from exc
        if not isinstance(payload, dict) or not payload.get("event_id"):
            raise WebhookRejected("not an AfterShip webhook (no event_id)")
        tracking = payload.get("msg")
        if not isinstance(tracking, dict) or not tracking.get("tracking_number"):
            raise WebhookRejected("the webhook carries no tracking")
        update = to_update(tracking)
        return [WebhookEvent(str(payload["event_id"]), update.tracking_number, update)]
