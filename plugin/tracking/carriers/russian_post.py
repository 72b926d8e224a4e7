"""Russian Post single-access tracking API: SOAP 1.2 `getOperationHistory` (rtm34).

Answers are namespaced XML whose prefixes vary, so elements are matched by local name.
The service has no webhooks for single access.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import httpx

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

REQUEST = """<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" \
xmlns:oper="http://russianpost.org/operationhistory" \
xmlns:data="http://russianpost.org/operationhistory/data" \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soap:Header/>
<soap:Body>
<oper:getOperationHistory>
<data:OperationHistoryRequest>
<data:Barcode>{barcode}</data:Barcode>
<data:MessageType>0</data:MessageType>
<data:Language>RUS</data:Language>
</data:OperationHistoryRequest>
<data:AuthorizationHeader soapenv:mustUnderstand="1">
<data:login>{login}</data:login>
<data:password>{password}</data:password>
</data:AuthorizationHeader>
</oper:getOperationHistory>
</soap:Body>
</soap:Envelope>"""

# (operation type, attribute) → status; attribute None matches any attribute of the type.
OPERATIONS: dict[tuple[int, int | None], tuple[Status, str]] = {
    (1, None): (Status.INFO_RECEIVED, "InfoReceived_001"),  # Приём
    (2, 1): (Status.DELIVERED, "Delivered_001"),  # Вручение адресату
    (2, None): (Status.DELIVERED, "Delivered_001"),
    (2, 2): (Status.EXCEPTION, "Exception_011"),  # Вручение отправителю (returned)
    (3, None): (Status.EXCEPTION, "Exception_011"),  # Возврат
    (4, None): (Status.IN_TRANSIT, "InTransit_001"),  # Досылка почты
    (5, None): (Status.EXCEPTION, "Exception_010"),  # Невручение
    (6, None): (Status.AVAILABLE_FOR_PICKUP, "AvailableForPickup_001"),  # Хранение
    (7, None): (Status.EXCEPTION, "Exception_010"),  # Временное хранение
    (8, 2): (Status.AVAILABLE_FOR_PICKUP, "AvailableForPickup_001"),  # Прибыло в место вручения
    (8, None): (Status.IN_TRANSIT, "InTransit_001"),  # Обработка
    (9, None): (Status.IN_TRANSIT, "InTransit_001"),  # Импорт
    (10, None): (Status.IN_TRANSIT, "InTransit_001"),  # Экспорт
    (11, None): (Status.IN_TRANSIT, "InTransit_004"),  # Приём на таможню
    (12, None): (Status.ATTEMPT_FAIL, "AttemptFail_001"),  # Неудачная попытка вручения
    (14, None): (Status.IN_TRANSIT, "InTransit_004"),  # Таможенное оформление
    (15, None): (Status.EXPIRED, "Expired_001"),  # Передача на временное хранение
    (16, None): (Status.EXCEPTION, "Exception_005"),  # Уничтожение
    (17, None): (Status.AVAILABLE_FOR_PICKUP, "AvailableForPickup_001"),  # Извещение
    (18, None): (Status.EXCEPTION, "Exception_013"),  # Регистрация утраты
    (43, None): (Status.OUT_FOR_DELIVERY, "OutForDelivery_001"),  # Вручение курьером (в пути)
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node: ElementTree.Element, *path: str) -> ElementTree.Element | None:
    current: ElementTree.Element | None = node
    for name in path:
        if current is None:
            return None
        current = next((c for c in current if _local(c.tag) == name), None)
    return current


def _text(node: ElementTree.Element, *path: str) -> str | None:
    found = _find(node, *path)
    return found.text.strip() if found is not None and found.text else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _map(oper_type: int | None, oper_attr: int | None) -> tuple[Status, str | None]:
    if oper_type is None:
        return Status.IN_TRANSIT, None
    found = OPERATIONS.get((oper_type, oper_attr)) or OPERATIONS.get((oper_type, None))
    return found if found else (Status.IN_TRANSIT, None)


def parse_history(tracking_number: str, root: ElementTree.Element) -> TrackingUpdate:
    checkpoints = []
    for record in root.iter():
        if _local(record.tag) != "historyRecord":
            continue
        moment = parse_time(_text(record, "OperationParameters", "OperDate"))
        if moment is None:
            continue
        oper_type = _int(_text(record, "OperationParameters", "OperType", "Id"))
        oper_attr = _int(_text(record, "OperationParameters", "OperAttr", "Id"))
        status, sub = _map(oper_type, oper_attr)
        name = _text(record, "OperationParameters", "OperType", "Name") or ""
        attr = _text(record, "OperationParameters", "OperAttr", "Name")
        place = _text(record, "AddressParameters", "OperationAddress", "Description")
        index = _text(record, "AddressParameters", "OperationAddress", "Index")
        checkpoints.append(
            CheckpointData(
                occurred_at=moment,
                status=status,
                sub_status=sub,
                carrier_status=f"{oper_type}.{oper_attr if oper_attr is not None else 0}",
                message=(f"{name}: {attr}" if attr else name)[:1024],
                location=", ".join(p for p in (index, place) if p) or None,
            )
        )
    if not checkpoints:
        raise NotTracked(f"Russian Post has no operations for {tracking_number} yet")
    last = max(checkpoints, key=lambda c: c.occurred_at)
    return TrackingUpdate(
        tracking_number=tracking_number,
        status=last.status,
        sub_status=last.sub_status,
        carrier_status=last.carrier_status,
        carrier_text=last.message,
        checkpoints=tuple(checkpoints),
        pickup_point=last.location if last.status == Status.AVAILABLE_FOR_PICKUP else None,
        occurred_at=last.occurred_at,
    )


def _fault(root: ElementTree.Element) -> str | None:
    for node in root.iter():
        if _local(node.tag) == "Fault":
            texts = [n.text.strip() for n in node.iter() if _local(n.tag) == "Text" and n.text]
            details = [
                n.text.strip() for n in node.iter() if _local(n.tag).endswith("Reason") and n.text
            ]
            return "; ".join(texts + details) or "SOAP fault"
    return None


class RussianPostAdapter:
    name = "russian_post"

    def __init__(self, http: httpx.AsyncClient, account: AccountConfig) -> None:
        self.http = http
        self.url = account.base_url
        self.login = account.credentials.get("login", "")
        self.password = account.credentials.get("password", "")

    async def poll(self, tracking_number: str) -> TrackingUpdate:
        body = REQUEST.format(
            barcode=escape(tracking_number),
            login=escape(self.login),
            password=escape(self.password),
        )
        try:
            response = await self.http.post(
                self.url,
                content=body.encode(),
                headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise CarrierError(f"Russian Post unreachable: {exc}") from exc
        if response.status_code == 429:
            raise RateLimited("Russian Post: too many requests", retry_after_seconds(response))
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError as exc:
            raise CarrierError(f"Russian Post answered HTTP {response.status_code}") from exc
        fault = _fault(root)
        if fault is not None:
            lowered = fault.lower()
            if "limit" in lowered or "лимит" in lowered:
                raise RateLimited(f"Russian Post: {fault}", retry_after_seconds(response, 3600))
            if "authoriz" in lowered or "авториз" in lowered:
                raise CarrierError(f"Russian Post: {fault}", retryable=False)
            raise NotTracked(f"Russian Post: {fault}")
        if response.status_code >= 400:
            raise CarrierError(f"Russian Post answered HTTP {response.status_code}")
        return parse_history(tracking_number, root)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        raise WebhookRejected("Russian Post single-access tracking has no webhooks")

    def webhook_events(self, body: bytes) -> list[WebhookEvent]:
        raise WebhookRejected("Russian Post single-access tracking has no webhooks")
