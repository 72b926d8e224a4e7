"""A Saleor instance for tests: JWKS, the GraphQL endpoint, signed webhooks, dashboard JWTs.

It speaks Saleor's real protocol (PLATFORM.md §2, §3, §6) on a loopback port: webhooks are
compact detached RS256 JWS over the raw body (RFC 7797, `b64: false`); every GraphQL
query the app sends is validated against Saleor's own schema before it is answered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLEnumType, GraphQLSchema, execute_sync, parse, validate
from graphql.error import GraphQLError
from jwt.algorithms import RSAAlgorithm

from plugin.saleor.manifest import app_identifier
from tests.saleor_schema import saleor_schema
from tests.simulator.apps import installed_app
from tests.simulator.lists import lists

# Every port a simulator of this test run has listened on.
_PORTS_USED: set[int] = set()

SALEOR_VERSION = "3.23.28"
TOKEN_ALPHABET = string.ascii_letters + string.digits

FAMILY_PATHS = {
    "checkout": "/api/webhooks/checkout",
    "order": "/api/webhooks/order",
    "fulfillment": "/api/webhooks/fulfillment",
    "customer": "/api/webhooks/customer",
    "app": "/api/webhooks/app",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def global_id(kind: str, ident: object) -> str:
    return base64.b64encode(f"{kind}:{ident}".encode()).decode()


def _saleor_enums(schema: GraphQLSchema) -> GraphQLSchema:
    """Saleor (graphql-core 2) words a value an enum cannot represent as `Expected a value
    of type "OrderOriginEnum" but received: ` (the value, here empty), at the field's path;
    a non-null field then nulls its parents up to the list, as graphql-core 3 does too.
    Patched once per schema: validation, which the app's tests share, is untouched."""
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLEnumType) or getattr(named, "saleor_words", False):
            continue
        # graphql-core 3.3 coerces output with `coerce_output_value`, 3.2 with `serialize`.
        for method in ("coerce_output_value", "serialize"):
            original = getattr(named, method, None)
            if original is None:
                continue

            def coerce(value: Any, _original: Any = original, _name: str = named.name) -> Any:
                try:
                    return _original(value)
                except GraphQLError:
                    raise GraphQLError(
                        f'Expected a value of type "{_name}" but received: {value}'
                    ) from None

            setattr(named, method, coerce)
        named.saleor_words = True  # type: ignore[attr-defined]
    return schema


class _Key:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        # RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
        canonical = json.dumps(
            {"e": public_jwk["e"], "kty": "RSA", "n": public_jwk["n"]},
            separators=(",", ":"),
            sort_keys=True,
        )
        self.kid = _b64url(hashlib.sha256(canonical.encode()).digest())
        self.jwk = {**public_jwk, "use": "sig", "alg": "RS256", "kid": self.kid}


@dataclass(frozen=True)
class ForeignApp:
    """Another app installed in the same Saleor (no permissions needed for `app`)."""

    id: str
    identifier: str | None
    name: str = "Some other app"


class SaleorSimulator:
    """Start with `start()` or use as a context manager; `stop()` frees the port."""

    def __init__(self, app_number: int = 42) -> None:
        self.app_id = global_id("App", app_number)
        # Saleor stores the manifest's `id` as `App.identifier` at install.
        self.app_identifier = app_identifier()
        self.version = SALEOR_VERSION
        self._key = _Key()
        # token -> the app it authenticates; None: the CRM app (see `_crm_token_app`).
        self._tokens: dict[str, ForeignApp | None] = {}
        # A CRM token -> the id of the App it was issued to: deleting that App (a
        # re-install makes a new one) leaves its tokens authenticating nothing.
        self._crm_token_app: dict[str, str] = {}
        self.jwks_available = True
        self.app_active = True
        self.jwks_fetches = 0
        self.graphql_requests: list[dict[str, Any]] = []
        self.invalid_queries: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        # The shop behind the GraphQL lists (`customers`, `orders`, `checkouts`): a FakeShop.
        self.shop: Any = None
        # Answers to give before the next GraphQL requests: (HTTP status, Retry-After).
        self.refusals: list[tuple[int, str | None]] = []
        # The manifest `appInstall` fetched (`install_manifest`): `App.appUrl`, extensions.
        self.manifest: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> SaleorSimulator:
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(
                self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] = {}
            ) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path == "/.well-known/jwks.json":
                    simulator.jwks_fetches += 1
                    if not simulator.jwks_available:
                        self._send(500, {"error": "unavailable"})
                    else:
                        self._send(200, simulator.jwks())
                    return
                self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/graphql/":
                    self._send(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if simulator.refusals:
                    status, retry_after = simulator.refusals.pop(0)
                    extra = {"Retry-After": retry_after} if retry_after is not None else {}
                    self._send(status, {"errors": [{"message": "Too many requests"}]}, extra)
                    return
                status, answer = simulator._graphql(headers, raw)
                self._send(status, answer)

        # A shop is known by its URL: a port the OS hands out again would make this test's
        # shop an earlier test's (same database, same `saleor_api_url`). Never reuse one.
        held: list[ThreadingHTTPServer] = []  # refused ports stay bound until one is new
        while True:
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            if server.server_address[1] not in _PORTS_USED:
                break
            held.append(server)
        for spare in held:
            spare.server_close()
        self._server = server
        self.port = server.server_address[1]
        _PORTS_USED.add(self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SaleorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.domain}"

    @property
    def api_url(self) -> str:
        return f"{self.origin}/graphql/"

    @property
    def jwks_url(self) -> str:
        return f"{self.origin}/.well-known/jwks.json"

    # -- keys and tokens ---------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.jwk]}

    def rotate_key(self) -> None:
        """Saleor's RSA_PRIVATE_KEY changed: old signatures stop verifying at once."""
        self._key = _Key()

    def new_app_token(self) -> str:
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(30))
        self._tokens[token] = None
        self._crm_token_app[token] = self.app_id
        return token

    def foreign_app_token(
        self, app_number: int = 77, identifier: str | None = "com.example.other-app"
    ) -> str:
        """A token of another app installed in this Saleor: it answers `app { id }` too."""
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(30))
        self._tokens[token] = ForeignApp(global_id("App", app_number), identifier)
        return token

    def reinstall_app(self, app_number: int) -> None:
        """The CRM was deleted and installed again: Saleor made a new App (new id). The
        old App's tokens now authenticate nothing: Saleor 3.23.28 reads them as no
        credentials, so `{ app { id } }` answers `app: null` (HTTP 200)."""
        self.app_id = global_id("App", app_number)

    def revoke_token(self, token: str) -> None:
        self._tokens.pop(token, None)

    def _app_of(self, token: str | None) -> dict[str, Any] | None:
        if token is None or token not in self._tokens:
            return None
        foreign = self._tokens[token]
        if foreign is not None:
            return {"id": foreign.id, "identifier": foreign.identifier, "name": foreign.name}
        if not self.app_active or self._crm_token_app.get(token) != self.app_id:
            return None
        return {**installed_app(self.app_id, self.manifest), "identifier": self.app_identifier}

    def install_manifest(self, manifest: dict[str, Any]) -> None:
        """What `appInstall` keeps of the manifest it fetched (`App.appUrl`, extensions)."""
        self.manifest = manifest

    # -- GraphQL endpoint --------------------------------------------------------------
    def _token_from(self, headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return headers.get("authorization-bearer") or None

    def _graphql(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        self.graphql_requests.append({"headers": headers, "body": raw})
        try:
            request = json.loads(raw)
            document = parse(request["query"])
        except (ValueError, KeyError, GraphQLError) as exc:
            self.invalid_queries.append(raw.decode(errors="replace"))
            return 400, {"errors": [{"message": f"Invalid request: {exc}"}]}
        errors = validate(saleor_schema(), document)
        if errors:
            self.invalid_queries.append(request["query"])
            return 400, {"errors": [{"message": e.message} for e in errors]}
        token = self._token_from(headers)
        app = self._app_of(token)
        known = app is not None
        # Only the CRM's token holds the permissions the lists need.
        crm = known and self._tokens.get(token or "") is None
        result = execute_sync(
            _saleor_enums(saleor_schema()),
            document,
            root_value={"app": app, **(lists(self.shop) if crm else {})},
            variable_values=request.get("variables") or {},
        )
        answer: dict[str, Any] = {"data": result.data}
        reported: list[dict[str, Any]] = [
            # As Saleor words an error raised while executing: message, place, path.
            {
                "message": error.message,
                "locations": [{"line": x.line, "column": x.column} for x in error.locations or []],
                "path": error.path,
                "extensions": {"exception": {"code": "GraphQLError"}},
            }
            for error in result.errors or []
        ]
        # A token of no active app (unknown, revoked, its App deleted or deactivated) is
        # no credential at all to Saleor 3.23.28 (`AppByTokenLoader`, no JWT either): the
        # request runs anonymously, `app` is null and no error says why.
        if reported:
            answer["errors"] = reported
        return 200, answer

    # -- what Saleor sends ---------------------------------------------------------------
    def register_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Saleor-Domain": self.domain,
            "X-Saleor-Domain": self.domain,
            "Saleor-Api-Url": self.api_url,
            "Saleor-Schema-Version": "3.23",
            "User-Agent": "Saleor/3.23",
        }

    def sign(self, body: bytes, kid: str | None = None) -> str:
        """Compact detached JWS, unencoded payload (RFC 7797), as Saleor's jws_encode;
        `kid` names another key than the one that signs (a forgery)."""
        return jwt.api_jws.encode(
            body,
            self._key.private,
            algorithm="RS256",
            headers={"kid": kid or self._key.kid, "b64": False, "crit": ["b64"], "typ": "JWT"},
            is_payload_detached=True,
        )

    def webhook_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        signature = self.sign(body)
        return {
            "Content-Type": "application/json",
            "Saleor-Event": event_type,
            "Saleor-Domain": self.domain,
            "Saleor-Signature": signature,
            "Saleor-Api-Url": self.api_url,
            "X-Saleor-Event": event_type,
            "X-Saleor-Domain": self.domain,
            "X-Saleor-Signature": signature,
            "User-Agent": "Saleor/3.23",
        }

    def make_jwt(self, *, kid: str | None = None, **overrides: Any) -> str:
        """A dashboard access token (App / AppExtension `accessToken`, PLATFORM.md §6);
        `kid` names another key than the one that signs (a forgery)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iat": now,
            "exp": now + 300,
            "iss": self.api_url,
            "owner": "saleor",
            "type": "thirdparty",
            "token": secrets.token_urlsafe(12),
            "email": "staff@example.com",
            "user_id": global_id("User", 1),
            "is_staff": True,
            "app": self.app_id,
            "permissions": ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"],
            "user_permissions": ["MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_CHECKOUTS"],
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(
            claims, self._key.private, algorithm="RS256", headers={"kid": kid or self._key.kid}
        )

    # -- delivering webhooks ---------------------------------------------------------------
    @staticmethod
    def path_for(event_type: str) -> str:
        return FAMILY_PATHS[event_type.split("_", 1)[0]]

    def deliver(self, target: str | httpx.Client, event: Any) -> httpx.Response:
        headers = self.webhook_headers(event.event_type, event.body)
        path = self.path_for(event.event_type)
        if isinstance(target, httpx.Client):
            return target.post(path, content=event.body, headers=headers)
        return httpx.post(target.rstrip("/") + path, content=event.body, headers=headers)

    async def adeliver(self, target: str | httpx.AsyncClient, event: Any) -> httpx.Response:
        headers = self.webhook_headers(event.event_type, event.body)
        path = self.path_for(event.event_type)
        if isinstance(target, httpx.AsyncClient):
            return await target.post(path, content=event.body, headers=headers)
        async with httpx.AsyncClient() as client:
            return await client.post(target.rstrip("/") + path, content=event.body, headers=headers)
