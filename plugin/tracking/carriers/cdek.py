"""CDEK API v2: OAuth client credentials, then `GET /orders?cdek_number=…`.

Tokens live about an hour; they are cached per account and fetched again once when the
API answers 401. CDEK's webhooks are not signed, so a push only marks the shipment due:
the status itself is always read from the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from plugin.kit.bodies import parse_json
from plugin.tracking.carriers.base import (
    AccountConfig,
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

# CDEK status codes (API v2 reference, "Статусы заказа") onto the normalised set.
STATUS_MAP: dict[str, tuple[Status, str]] = {
    "ACCEPTED": (Status.PENDING, "Pending_001"),
    "CREATED": (Status.INFO_RECEIVED, "InfoReceived_001"),
    "RECEIVED_AT_SHIPMENT_WAREHOUSE": (Status.IN_TRANSIT, "InTransit_002"),
    "READY_TO_SHIP_AT_SENDING_OFFICE": (Status.IN_TRANSIT, "InTransit_001"),
    "READY_FOR_SHIPMENT_IN_TRANSIT_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "TAKEN_BY_TRANSPORTER_FROM_SENDER_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "SENT_TO_TRANSIT_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "ACCEPTED_IN_TRANSIT_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "ACCEPTED_AT_TRANSIT_WAREHOUSE": (Status.IN_TRANSIT, "InTransit_001"),
    "SENT_TO_RECIPIENT_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "ACCEPTED_IN_RECIPIENT_CITY": (Status.IN_TRANSIT, "InTransit_001"),
    "ACCEPTED_AT_RECIPIENT_CITY_WAREHOUSE": (Status.IN_TRANSIT, "InTransit_001"),
    "ACCEPTED_AT_PICK_UP_POINT": (Status.AVAILABLE_FOR_PICKUP, "AvailableForPickup_001"),
    "POSTOMAT_POSTED": (Status.AVAILABLE_FOR_PICKUP, "AvailableForPickup_001"),
    "TAKEN_BY_COURIER": (Status.OUT_FOR_DELIVERY, "OutForDelivery_001"),
    "RETURNED_TO_RECIPIENT_CITY_WAREHOUSE": (Status.ATTEMPT_FAIL, "AttemptFail_001"),
    "DELIVERED": (Status.DELIVERED, "Delivered_001"),
    "POSTOMAT_RECEIVED": (Status.DELIVERED, "Delivered_003"),
    "NOT_DELIVERED": (Status.EXCEPTION, "Exception_011"),
    "RETURNED_TO_SENDER_CITY_WAREHOUSE": (Status.EXCEPTION, "Exception_011"),
    "INVALID": (Status.EXCEPTION, "Exception_013"),
}

_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_token_locks: dict[tuple[int, str, str], asyncio.Lock] = {}


def _map(code: str) -> tuple[Status, str | None]:
    return STATUS_MAP.get(code, (Status.IN_TRANSIT, None))


def to_update(tracking_number: str, entity: Mapping[str, Any]) -> TrackingUpdate:
    checkpoints = []
    for item in entity.get("statuses") or []:
        moment = parse_time(item.get("date_time"))
        if moment is None:
            continue
        code = str(item.get("code") or "")
        status, sub = _map(code)
        checkpoints.append(
            CheckpointData(
                occurred_at=moment,
                status=status,
                sub_status=sub,
                carrier_status=code,
                message=str(item.get("name") or code)[:1024],
                location=item.get("city"),
            )
        )
    if not checkpoints:
        raise NotTracked(f"CDEK has no statuses for {tracking_number} yet")
    last = max(checkpoints, key=lambda c: c.occurred_at)
    to_location = entity.get("to_location") or {}
    pickup = entity.get("delivery_point")
    return TrackingUpdate(
        tracking_number=tracking_number,
        status=last.status,
        sub_status=last.sub_status,
        carrier_status=last.carrier_status,
        carrier_text=last.message,
        checkpoints=tuple(checkpoints),
        estimated_delivery=parse_time(entity.get("planned_delivery_date")),
        pickup_point=str(pickup) if pickup and last.status == Status.AVAILABLE_FOR_PICKUP else None,
        destination_city=to_location.get("city"),
        occurred_at=last.occurred_at,
    )


def _errors(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = list(body.get("errors") or [])
    for request in body.get("requests") or []:
        found += request.get("errors") or []
    return [e for e in found if isinstance(e, dict)]


class CdekAdapter:
    name = "cdek"

    def __init__(self, http: httpx.AsyncClient, account: AccountConfig) -> None:
        self.http = http
        self.base = account.base_url.rstrip("/")
        self.client_id = account.credentials.get("client_id", "")
        self.client_secret = account.credentials.get("client_secret", "")

    async def _token(self, *, fresh: bool = False) -> str:
        """One token request at a time per account: parallel polls share its answer
        (a stampede of token requests would eat the rate limit)."""
        key = (self.base, self.client_id)
        stale = _tokens.get(key) if fresh else None
        # asyncio locks belong to one event loop (web process and worker differ).
        lock = _token_locks.setdefault((id(asyncio.get_running_loop()), *key), asyncio.Lock())
        async with lock:
            cached = _tokens.get(key)
            if cached and cached != stale and cached[1] > time.monotonic():
                return cached[0]
            return await self._fetch_token(key)

    async def _fetch_token(self, key: tuple[str, str]) -> str:
        try:
            response = await self.http.post(
                f"{self.base}/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                },
            )
        except httpx.HTTPError as exc:
            raise CarrierError(f"CDEK unreachable: {exc}") from exc
        if response.status_code == 429:
            raise RateLimited("CDEK: too many token requests", retry_after_seconds(response))
        if response.status_code != 200:
            raise CarrierError(
                f"CDEK refused the client credentials (HTTP {response.status_code})",
                retryable=response.status_code >= 500,
            )
        body = response.json()
        token = str(body.get("access_token") or "")
        if not token:
            raise CarrierError("CDEK answered without an access token")
        lifetime = float(body.get("expires_in") or 3600)
        _tokens[key] = (token, time.monotonic() + max(0.0, lifetime - 60))
        return token

    async def poll(self, tracking_number: str) -> TrackingUpdate:
        for attempt in range(2):
            token = await self._token(fresh=attempt > 0)
            try:
                response = await self.http.get(
                    f"{self.base}/orders",
                    params={"cdek_number": tracking_number},
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as exc:
                raise CarrierError(f"CDEK unreachable: {exc}") from exc
            if response.status_code == 401 and attempt == 0:
                continue  # the token expired early: one fresh token, one more try
            break
        if response.status_code == 429:
            raise RateLimited("CDEK: too many requests", retry_after_seconds(response))
        if response.status_code >= 500:
            raise CarrierError(f"CDEK answered HTTP {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise CarrierError("CDEK answered with invalid JSON") from exc
        errors = _errors(body)
        if response.status_code >= 400 or (errors and not body.get("entity")):
            codes = ", ".join(str(e.get("code")) for e in errors) or str(response.status_code)
            if any(e.get("code") == "v2_entity_not_found" for e in errors):
                raise NotTracked(f"CDEK does not know {tracking_number}: {codes}")
            raise CarrierError(f"CDEK error: {codes}", retryable=response.status_code != 401)
        return to_update(tracking_number, body.get("entity") or {})

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """CDEK does not sign pushes: the account's secret URL is the only proof, so a
        push never carries a status in (see webhook_events)."""

    def webhook_events(self, body: bytes) -> list[WebhookEvent]:
        try:
            payload = parse_json(body)
        except ValueError as exc:
            raise WebhookRejected("the body is not JSON") from exc
        if not isinstance(payload, dict) or payload.get("type") != "ORDER_STATUS":
            raise WebhookRejected("not a CDEK ORDER_STATUS webhook")
        attributes = payload.get("attributes") or {}
        number = str(attributes.get("cdek_number") or "")
        if not number:
            raise WebhookRejected("the webhook carries no cdek_number")
        event_id = ":".join(
            str(x)
            for x in (
                payload.get("uuid"),
                attributes.get("code"),
                attributes.get("status_date_time"),
            )
        )
        # Unsigned: the push only says "look now"; the status is read from the API.
        return [WebhookEvent(event_id, number, None)]
