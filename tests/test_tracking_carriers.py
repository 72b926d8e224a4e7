"""Each carrier adapter against a loopback double of the carrier's documented API:
status mapping with sub-status and the carrier's text, errors, and 429 rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from plugin.tracking.carriers.aftership import AfterShipAdapter
from plugin.tracking.carriers.base import (
    AccountConfig,
    BadSignature,
    CarrierError,
    NotTracked,
    RateLimited,
    WebhookRejected,
)
from plugin.tracking.carriers.cdek import CdekAdapter
from plugin.tracking.carriers.russian_post import RussianPostAdapter
from plugin.tracking.statuses import Status, parse_status
from tests.carrier_doubles import AfterShipDouble, CdekDouble, RussianPostDouble


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


@pytest.fixture
def cdek() -> Iterator[CdekDouble]:
    with CdekDouble() as double:
        yield double


@pytest.fixture
def russian_post() -> Iterator[RussianPostDouble]:
    with RussianPostDouble() as double:
        yield double


def _aftership(double: AfterShipDouble, http: httpx.AsyncClient, **creds: str) -> AfterShipAdapter:
    credentials = {"api_key": "as-key", "webhook_secret": "as-secret", **creds}
    return AfterShipAdapter(http, AccountConfig(double.base_url, credentials))


# -- statuses ---------------------------------------------------------------------------------
def test_status_names_and_snake_case() -> None:
    assert Status.OUT_FOR_DELIVERY.snake == "out_for_delivery"
    assert Status.AVAILABLE_FOR_PICKUP.snake == "available_for_pickup"
    assert Status.INFO_RECEIVED.snake == "info_received"
    assert parse_status("attempt_fail") is Status.ATTEMPT_FAIL
    assert parse_status("Delivered") is Status.DELIVERED
    assert [s for s in Status if s.is_final] == [Status.DELIVERED, Status.EXPIRED]
    with pytest.raises(ValueError, match="unknown shipment status"):
        parse_status("teleported")


# -- AfterShip --------------------------------------------------------------------------------
async def test_aftership_poll_maps_tracking(
    aftership: AfterShipDouble, http: httpx.AsyncClient
) -> None:
    aftership.set_tracking(
        "JD0146000012345",
        "OutForDelivery",
        subtag="OutForDelivery_003",
        checkpoints=[
            ("2026-11-03T08:00:00+01:00", "InfoReceived", "Label created", "Leipzig"),
            ("2026-11-04T07:15:00+01:00", "OutForDelivery", "With courier for delivery", "Berlin"),
        ],
        edd="2026-11-04",
    )
    update = await _aftership(aftership, http).poll("JD0146000012345")
    assert update.status is Status.OUT_FOR_DELIVERY
    assert update.sub_status == "OutForDelivery_003"
    assert update.carrier_text == "With courier for delivery"
    assert update.occurred_at == datetime(2026, 11, 4, 6, 15, tzinfo=UTC)
    assert update.estimated_delivery == datetime(2026, 11, 4, tzinfo=UTC)
    assert [c.status for c in update.checkpoints] == [Status.INFO_RECEIVED, Status.OUT_FOR_DELIVERY]
    assert update.checkpoints[1].location == "Berlin, DEU"
    assert aftership.requests[-1]["headers"]["as-api-key"] == "as-key"


async def test_aftership_creates_unknown_number_then_reads_it(
    aftership: AfterShipDouble, http: httpx.AsyncClient
) -> None:
    update = await _aftership(aftership, http).poll("NEW123456789")
    assert update.status is Status.PENDING
    assert aftership.created == ["NEW123456789"]
    again = await _aftership(aftership, http).poll("NEW123456789")
    assert again.status is Status.PENDING
    assert aftership.created == ["NEW123456789"]  # read, not created twice


async def test_aftership_errors(aftership: AfterShipDouble, http: httpx.AsyncClient) -> None:
    with pytest.raises(CarrierError, match="Invalid API key") as refused:
        await _aftership(aftership, http, api_key="wrong").poll("X1")
    assert refused.value.retryable is False
    aftership.force_status.append(500)
    with pytest.raises(CarrierError, match="HTTP 500") as failed:
        await _aftership(aftership, http).poll("X1")
    assert failed.value.retryable is True


async def test_aftership_429_carries_the_reset_time(
    aftership: AfterShipDouble, http: httpx.AsyncClient
) -> None:
    aftership.rate_limit = 2
    aftership.set_tracking("RL1", "InTransit")
    adapter = _aftership(aftership, http)
    await adapter.poll("RL1")
    await adapter.poll("RL1")
    with pytest.raises(RateLimited) as limited:
        await adapter.poll("RL1")
    assert 0 < limited.value.retry_after <= 2
    assert aftership.rate_limited == 1


def test_aftership_webhook_signature(aftership: AfterShipDouble, http: httpx.AsyncClient) -> None:
    aftership.set_tracking(
        "WH1",
        "Delivered",
        checkpoints=[("2026-11-05T10:00:00Z", "Delivered", "Delivered", "Berlin")],
    )
    body, headers = aftership.webhook("WH1", event_id="7b7c1f4e-0001")
    adapter = AfterShipAdapter(
        httpx.AsyncClient(),
        AccountConfig(aftership.base_url, {"api_key": "k", "webhook_secret": "as-secret"}),
    )
    adapter.verify(headers, body)
    (event,) = adapter.webhook_events(body)
    assert event.event_id == "7b7c1f4e-0001"
    assert event.update is not None
    assert event.update.status is Status.DELIVERED
    with pytest.raises(BadSignature):
        adapter.verify({"aftership-hmac-sha256": "Zm9v"}, body)
    with pytest.raises(BadSignature):
        adapter.verify(headers, body + b" ")
    with pytest.raises(WebhookRejected, match="no event_id"):
        adapter.webhook_events(b'{"msg": {}}')


# -- CDEK -------------------------------------------------------------------------------------
async def test_cdek_oauth_then_order_statuses(cdek: CdekDouble, http: httpx.AsyncClient) -> None:
    cdek.set_statuses(
        "1106207236",
        [
            ("CREATED", "Создан", "2026-11-02T10:00:00+0300", "Москва"),
            (
                "RECEIVED_AT_SHIPMENT_WAREHOUSE",
                "Принят на склад отправителя",
                "2026-11-02T18:00:00+0300",
                "Москва",
            ),
            (
                "ACCEPTED_AT_PICK_UP_POINT",
                "Принят на склад до востребования",
                "2026-11-05T09:30:00+0300",
                "Казань",
            ),
        ],
        delivery_point="KZN12",
    )
    adapter = CdekAdapter(
        http, AccountConfig(cdek.base_url, {"client_id": "cdek-id", "client_secret": "cdek-secret"})
    )
    update = await adapter.poll("1106207236")
    assert update.status is Status.AVAILABLE_FOR_PICKUP
    assert update.carrier_status == "ACCEPTED_AT_PICK_UP_POINT"
    assert update.carrier_text == "Принят на склад до востребования"
    assert update.pickup_point == "KZN12"
    assert update.occurred_at == datetime(2026, 11, 5, 6, 30, tzinfo=UTC)
    assert len(update.checkpoints) == 3
    token_requests = cdek.token_requests
    await adapter.poll("1106207236")
    assert cdek.token_requests == token_requests  # the token is cached
    cdek.expire_tokens()
    assert (await adapter.poll("1106207236")).status is Status.AVAILABLE_FOR_PICKUP
    assert cdek.token_requests == token_requests + 1  # one fresh token after the 401


async def test_cdek_errors(cdek: CdekDouble, http: httpx.AsyncClient) -> None:
    bad = CdekAdapter(
        http, AccountConfig(cdek.base_url, {"client_id": "cdek-id2", "client_secret": "nope"})
    )
    with pytest.raises(CarrierError, match="refused the client credentials") as refused:
        await bad.poll("1")
    assert refused.value.retryable is False
    good = CdekAdapter(
        http, AccountConfig(cdek.base_url, {"client_id": "cdek-id", "client_secret": "cdek-secret"})
    )
    with pytest.raises(NotTracked, match="v2_entity_not_found"):
        await good.poll("0000000000")
    cdek.set_statuses("2", [("CREATED", "Создан", "2026-11-02T10:00:00+0300", "Москва")])
    await good.poll("2")  # the token is cached now: the next request is the order's
    cdek.force_status.append(429)
    with pytest.raises(RateLimited):
        await good.poll("2")
    cdek.force_status.append(503)
    with pytest.raises(CarrierError, match="HTTP 503"):
        await good.poll("2")


def test_cdek_webhook_only_says_look(cdek: CdekDouble, http: httpx.AsyncClient) -> None:
    cdek.set_statuses("77", [("DELIVERED", "Вручен", "2026-11-06T12:00:00+0300", "Казань")])
    adapter = CdekAdapter(http, AccountConfig(cdek.base_url, {}))
    (event,) = adapter.webhook_events(cdek.webhook("77"))
    assert event.tracking_number == "77"
    assert event.update is None  # unsigned: the status is read from the API
    with pytest.raises(WebhookRejected):
        adapter.webhook_events(b'{"type": "PRINT_FORM"}')


# -- Russian Post ------------------------------------------------------------------------------
RP_HISTORY = [
    (1, 1, "Прием", "Единичный", "2026-11-02T14:14:00.000+03:00", "101000", "Москва 101000"),
    (
        8,
        1,
        "Обработка",
        "Покинуло место приема",
        "2026-11-02T20:00:00.000+03:00",
        "101000",
        "Москва 101000",
    ),
    (
        8,
        2,
        "Обработка",
        "Прибыло в место вручения",
        "2026-11-06T09:00:00.000+03:00",
        "420000",
        "Казань 420000",
    ),
]


async def test_russian_post_history(
    russian_post: RussianPostDouble, http: httpx.AsyncClient
) -> None:
    russian_post.set_history("RA644000001RU", RP_HISTORY)
    adapter = RussianPostAdapter(
        http, AccountConfig(russian_post.base_url, {"login": "rp-login", "password": "rp-password"})
    )
    update = await adapter.poll("RA644000001RU")
    assert update.status is Status.AVAILABLE_FOR_PICKUP
    assert update.carrier_status == "8.2"
    assert update.carrier_text == "Обработка: Прибыло в место вручения"
    assert update.pickup_point == "420000, Казань 420000"
    assert [c.status for c in update.checkpoints] == [
        Status.INFO_RECEIVED,
        Status.IN_TRANSIT,
        Status.AVAILABLE_FOR_PICKUP,
    ]
    body = russian_post.requests[-1]["body"].decode()
    assert "<data:Barcode>RA644000001RU</data:Barcode>" in body
    russian_post.set_history(
        "RA644000002RU",
        [
            *RP_HISTORY,
            (
                2,
                1,
                "Вручение",
                "Вручение адресату",
                "2026-11-07T11:00:00.000+03:00",
                "420000",
                "Казань",
            ),
        ],
    )
    assert (await adapter.poll("RA644000002RU")).status is Status.DELIVERED


async def test_russian_post_faults(
    russian_post: RussianPostDouble, http: httpx.AsyncClient
) -> None:
    wrong = RussianPostAdapter(
        http, AccountConfig(russian_post.base_url, {"login": "x", "password": "y"})
    )
    with pytest.raises(CarrierError, match="authorization") as refused:
        await wrong.poll("RA644000001RU")
    assert refused.value.retryable is False
    adapter = RussianPostAdapter(
        http, AccountConfig(russian_post.base_url, {"login": "rp-login", "password": "rp-password"})
    )
    with pytest.raises(NotTracked, match="не найдено"):
        await adapter.poll("RA000000000RU")
    russian_post.force_status.append(429)
    with pytest.raises(RateLimited) as limited:
        await adapter.poll("RA644000001RU")
    assert limited.value.retry_after >= 1
    russian_post.force_status.append(503)
    with pytest.raises(CarrierError, match="HTTP 503"):
        await adapter.poll("RA644000001RU")
