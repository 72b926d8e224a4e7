"""Carrier APIs for tests, each a real HTTP server on loopback speaking the carrier's
documented protocol, with its errors and its rate limit (429):

- AfterShip Tracking API 2024-04 (`as-api-key`, `meta`/`data` envelopes, 4003 "tracking
  already exists", 429 with `X-RateLimit-*`) and HMAC-SHA256-signed webhooks;
- CDEK API v2 (OAuth client credentials at `/v2/oauth/token`, bearer tokens that expire,
  `GET /v2/orders?cdek_number=`, `requests[].errors[]`);
- Russian Post single-access tracking (SOAP 1.2 `getOperationHistory`, SOAP faults).

The parcels' histories are scripted by the test; every request is recorded.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from plugin.tracking.carriers.aftership import sign

JSON = dict[str, Any]


class LoopbackDouble:
    """A threaded HTTP server on 127.0.0.1 with a sliding-window rate limit and counters
    of requests in flight (to check the client's concurrency limit)."""

    def __init__(self, rate_limit: int = 0, latency: float = 0.0) -> None:
        self.rate_limit = rate_limit  # requests per second; 0 = unlimited
        self.latency = latency
        self.requests: list[JSON] = []
        self.rate_limited = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.force_status: deque[int] = deque()  # scripted failures, in order
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer, extra = double._dispatch(method, self.path, headers, body)
                raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                content_type = extra.pop("Content-Type", "application/json")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client closing its idle keep-alive connection is not an error.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _admit(self) -> tuple[bool, float]:
        """Sliding one-second window: (allowed, seconds until a slot frees)."""
        with self._lock:
            now = time.monotonic()
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if self.rate_limit and len(self._window) >= self.rate_limit:
                self.rate_limited += 1
                return False, 1.0 - (now - self._window[0])
            self._window.append(now)
            return True, 0.0

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            forced = self.force_status.popleft() if self.force_status else None
        try:
            if self.latency:
                time.sleep(self.latency)
            allowed, wait = self._admit()
            if forced == 429 or not allowed:
                return self.too_many(max(wait, 1.0))
            if forced is not None:
                return forced, self.failure(forced), {}
            return self.handle(method, path, headers, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- what each carrier overrides ----------------------------------------------------
    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def too_many(self, wait: float) -> tuple[int, Any, dict[str, str]]:
        return 429, {"error": "too many requests"}, {"Retry-After": str(int(wait + 0.999))}

    def failure(self, status: int) -> Any:
        return {"error": f"HTTP {status}"}


# -- AfterShip ------------------------------------------------------------------------------
class AfterShipDouble(LoopbackDouble):
    """AfterShip Tracking API 2024-04. `set_tracking` scripts a parcel's state."""

    def __init__(self, api_key: str = "as-key", webhook_secret: str = "as-secret", **kw: Any):
        super().__init__(**kw)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.trackings: dict[str, JSON] = {}
        self.created: list[str] = []

    def set_tracking(
        self,
        number: str,
        tag: str,
        *,
        subtag: str | None = None,
        checkpoints: list[tuple[str, str, str, str]] = (),  # type: ignore[assignment]
        edd: str | None = None,
        pickup_location: str | None = None,
        pickup_note: str | None = None,
        slug: str = "dhl",
    ) -> JSON:
        """checkpoints: (ISO time, tag, message, city)."""
        tracking: JSON = {
            "id": self.trackings.get(number, {}).get("id") or uuid.uuid4().hex,
            "tracking_number": number,
            "slug": slug,
            "tag": tag,
            "subtag": subtag or f"{tag}_001",
            "subtag_message": tag,
            "checkpoints": [
                {
                    "checkpoint_time": moment,
                    "tag": point_tag,
                    "subtag": f"{point_tag}_001",
                    "message": message,
                    "city": city,
                    "location": city,
                    "country_region": "DEU",
                    "slug": slug,
                }
                for moment, point_tag, message, city in checkpoints
            ],
            "courier_estimated_delivery_date": {
                "estimated_delivery_date": edd,
                "estimated_delivery_date_min": None,
                "estimated_delivery_date_max": None,
            },
            "pickup_location": pickup_location,
            "pickup_note": pickup_note,
            "destination_city": "Berlin",
        }
        self.trackings[number] = tracking
        return tracking

    def too_many(self, wait: float) -> tuple[int, Any, dict[str, str]]:
        reset = int(time.time() + wait + 0.999)
        return (
            429,
            {
                "meta": {
                    "code": 429,
                    "message": "You have exceeded the API call rate limit.",
                    "type": "TooManyRequests",
                },
                "data": {},
            },
            {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            },
        )

    def failure(self, status: int) -> Any:
        return {"meta": {"code": status, "message": "Internal error", "type": "InternalError"}}

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(path)
        if headers.get("as-api-key") != self.api_key:
            meta = {"code": 401, "message": "Invalid API key.", "type": "Unauthorized"}
            return 401, {"meta": meta, "data": {}}, {}
        if url.path != "/tracking/2024-04/trackings":
            meta = {"code": 404, "message": "The URI requested is invalid.", "type": "NotFound"}
            return 404, {"meta": meta, "data": {}}, {}
        ok = {"code": 200, "message": "OK", "type": "OK"}
        if method == "GET":
            numbers = parse_qs(url.query).get("tracking_numbers", [""])[0].split(",")
            if len(numbers) > 50:  # the API reads at most 50 numbers per request
                meta = {
                    "code": 4001,
                    "message": "tracking_numbers accepts at most 50 values.",
                    "type": "BadRequest",
                }
                return 400, {"meta": meta, "data": {}}, {}
            found = [self.trackings[n] for n in numbers if n in self.trackings]
            return 200, {"meta": ok, "data": {"trackings": found}}, {}
        try:
            number = str(json.loads(body)["tracking_number"])
        except (ValueError, KeyError, TypeError):
            meta = {"code": 4001, "message": "Invalid JSON data.", "type": "BadRequest"}
            return 400, {"meta": meta, "data": {}}, {}
        if number in self.trackings:
            meta = {"code": 4003, "message": "Tracking already exists.", "type": "BadRequest"}
            return 400, {"meta": meta, "data": {"tracking": self.trackings[number]}}, {}
        self.created.append(number)
        tracking = self.set_tracking(number, "Pending")
        return 201, {"meta": {**ok, "code": 201}, "data": tracking}, {}

    def webhook(self, number: str, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers AfterShip POSTs for the parcel's current state."""
        payload = {
            "event": "tracking_update",
            "event_id": event_id or str(uuid.uuid4()),
            "is_tracking_first_tag": True,
            "msg": self.trackings[number],
            "ts": int(time.time()),
        }
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "aftership-hmac-sha256": sign(self.webhook_secret, body),
        }
        return body, headers


# -- CDEK -----------------------------------------------------------------------------------
class CdekDouble(LoopbackDouble):
    """CDEK API v2 under `/v2`. `set_statuses` scripts an order's status history."""

    def __init__(self, client_id: str = "cdek-id", client_secret: str = "cdek-secret", **kw: Any):
        super().__init__(**kw)
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.orders: dict[str, JSON] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def set_statuses(
        self,
        number: str,
        statuses: list[tuple[str, str, str, str]],
        *,
        delivery_point: str | None = None,
        city: str = "Москва",
    ) -> None:
        """statuses: (code, name, date_time as CDEK writes it, city), oldest first."""
        self.orders[number] = {
            "uuid": str(uuid.uuid4()),
            "type": 1,
            "cdek_number": number,
            "tariff_code": 136,
            "delivery_point": delivery_point,
            "to_location": {"code": 44, "city": city, "country_code": "RU"},
            # CDEK lists the newest status first.
            "statuses": [
                {"code": code, "name": name, "date_time": moment, "city": where}
                for code, name, moment, where in reversed(statuses)
            ],
        }

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(path)
        if url.path == "/v2/oauth/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode() or url.query).items()}
            if form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}, {}
            if (form.get("client_id"), form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                return 401, {"error": "invalid_client", "error_description": "Bad credentials"}, {}
            self.token_requests += 1
            token = secrets.token_urlsafe(24)
            self.tokens.add(token)
            answer = {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": 3599,
                "scope": "order:all payment:all",
                "jti": str(uuid.uuid4()),
            }
            return 200, answer, {}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, {"requests": [], "errors": [{"code": "unauthorized"}]}, {}
        if url.path == "/v2/orders" and method == "GET":
            number = parse_qs(url.query).get("cdek_number", [""])[0]
            request = {"request_uuid": str(uuid.uuid4()), "type": "GET"}
            if number not in self.orders:
                errors = [{"code": "v2_entity_not_found", "message": "Order not found"}]
                return 400, {"requests": [{**request, "state": "INVALID", "errors": errors}]}, {}
            entity = self.orders[number]
            return 200, {"entity": entity, "requests": [{**request, "state": "SUCCESSFUL"}]}, {}
        return 404, {"errors": [{"code": "v2_bad_request", "message": "Unknown path"}]}, {}

    def webhook(self, number: str) -> bytes:
        """An ORDER_STATUS push for the order's newest status."""
        order = self.orders[number]
        newest = order["statuses"][0]
        payload = {
            "type": "ORDER_STATUS",
            "date_time": newest["date_time"],
            "uuid": order["uuid"],
            "attributes": {
                "is_return": False,
                "cdek_number": number,
                "code": newest["code"],
                "status_date_time": newest["date_time"],
                "city_name": newest["city"],
            },
        }
        return json.dumps(payload, ensure_ascii=False).encode()


# -- Russian Post ---------------------------------------------------------------------------
SOAP = "http://www.w3.org/2003/05/soap-envelope"
DATA = "http://russianpost.org/operationhistory/data"
OPER = "http://russianpost.org/operationhistory"


def _fault(reason: str, detail_tag: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP}"><S:Body><S:Fault>'
        f'<S:Code><S:Value>S:Receiver</S:Value></S:Code><S:Reason><S:Text xml:lang="ru">{reason}'
        f'</S:Text></S:Reason><S:Detail><ns3:{detail_tag} xmlns:ns3="{DATA}">{reason}'
        f"</ns3:{detail_tag}></S:Detail></S:Fault></S:Body></S:Envelope>"
    ).encode()


class RussianPostDouble(LoopbackDouble):
    """Russian Post's rtm34 endpoint. `set_history` scripts a barcode's operations."""

    def __init__(self, login: str = "rp-login", password: str = "rp-password", **kw: Any):
        super().__init__(**kw)
        self.login = login
        self.password = password
        self.histories: dict[str, list[tuple[int, int, str, str, str, str, str]]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rtm34"

    def set_history(
        self, barcode: str, operations: list[tuple[int, int, str, str, str, str, str]]
    ) -> None:
        """operations: (type id, attr id, type name, attr name, OperDate, index, place)."""
        self.histories[barcode] = operations

    def too_many(self, wait: float) -> tuple[int, Any, dict[str, str]]:
        return (
            429,
            b"Too Many Requests",
            {"Retry-After": str(int(wait + 0.999)), "Content-Type": "text/plain"},
        )

    def failure(self, status: int) -> Any:
        return b"<html><body>Service Unavailable</body></html>"

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        xml = {"Content-Type": "application/soap+xml; charset=utf-8"}
        if urlsplit(path).path != "/rtm34" or method != "POST":
            return 404, b"Not Found", {"Content-Type": "text/plain"}
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return 400, _fault("Malformed request", "OperationHistoryFaultReason"), xml
        values = {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in root.iter()}
        if (values.get("login"), values.get("password")) != (self.login, self.password):
            return (
                500,
                _fault("Ошибка авторизации (authorization failed)", "AuthorizationFaultReason"),
                xml,
            )
        barcode = values.get("Barcode", "")
        if barcode not in self.histories:
            return (
                500,
                _fault(f"Отправление {barcode} не найдено", "OperationHistoryFaultReason"),
                xml,
            )
        records = "".join(
            f"<ns3:historyRecord><ns3:AddressParameters><ns3:OperationAddress>"
            f"<ns3:Index>{index}</ns3:Index><ns3:Description>{place}</ns3:Description>"
            f"</ns3:OperationAddress></ns3:AddressParameters><ns3:OperationParameters>"
            f"<ns3:OperType><ns3:Id>{type_id}</ns3:Id><ns3:Name>{type_name}</ns3:Name></ns3:OperType>"
            f"<ns3:OperAttr><ns3:Id>{attr_id}</ns3:Id><ns3:Name>{attr_name}</ns3:Name></ns3:OperAttr>"
            f"<ns3:OperDate>{moment}</ns3:OperDate></ns3:OperationParameters></ns3:historyRecord>"
            for type_id, attr_id, type_name, attr_name, moment, index, place in self.histories[
                barcode
            ]
        )
        answer = (
            f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP}"><S:Body>'
            f'<ns7:getOperationHistoryResponse xmlns:ns7="{OPER}" xmlns:ns3="{DATA}">'
            f"<ns3:OperationHistoryData>{records}</ns3:OperationHistoryData>"
            f"</ns7:getOperationHistoryResponse></S:Body></S:Envelope>"
        ).encode()
        return 200, answer, xml


def headers_of(double: LoopbackDouble, index: int = -1) -> Mapping[str, str]:
    headers: Mapping[str, str] = double.requests[index]["headers"]
    return headers
