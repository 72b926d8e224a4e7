"""A thin async client for Saleor's GraphQL API and its JWKS endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from plugin.saleor.documents import GRAPHQL_DIR, document

QUERIES_DIR = GRAPHQL_DIR / "queries"


def load_query(name: str) -> str:
    """The documents the app sends live in `graphql/queries/` (validated in a test)."""
    return document(QUERIES_DIR / f"{name}.graphql")


class SaleorError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AppIdentity:
    """Who owns a token: the App's global id and its `identifier` (the manifest's `id`)."""

    id: str
    identifier: str | None


def jwks_url(saleor_api_url: str) -> str:
    """`<origin>/.well-known/jwks.json`, exactly as app-sdk derives it."""
    parts = urlsplit(saleor_api_url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


# GraphQL error codes Saleor gives a token it does not accept (PyJWT's errors and
# `PermissionDenied` travel as `extensions.exception.code`, newer ones as `extensions.code`).
AUTH_ERROR_CODES = frozenset(
    {
        "PermissionDenied",
        "InvalidTokenError",
        "ExpiredSignatureError",
        "DecodeError",
        "InvalidSignatureError",
        "STOREFRONT_TRAFFIC_NOT_ALLOWED",
    }
)


def _auth_error(error: Any) -> bool:
    if not isinstance(error, dict) or not isinstance(error.get("extensions"), dict):
        return False
    extensions = error["extensions"]
    exception = extensions.get("exception")
    code = exception.get("code") if isinstance(exception, dict) else extensions.get("code")
    return code in AUTH_ERROR_CODES


class SaleorClient:
    def __init__(self, http: httpx.AsyncClient, saleor_api_url: str, token: str | None = None):
        self.http = http
        self.saleor_api_url = saleor_api_url
        self.token = token

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.post(
                self.saleor_api_url,
                json={"query": query, "variables": variables or {}},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise SaleorError("SALEOR_UNREACHABLE", f"cannot reach Saleor: {exc}") from exc
        if response.status_code != 200:
            raise SaleorError("SALEOR_ERROR", f"Saleor answered HTTP {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise SaleorError("SALEOR_ERROR", "Saleor answered with invalid JSON") from exc
        return body

    async def app_identity(self) -> AppIdentity | None:
        """The app that owns the token, or None when Saleor does not know it."""
        body = await self.execute(load_query("app_id"))
        data = body.get("data")
        app = data.get("app") if isinstance(data, dict) else None
        if not isinstance(app, dict) or not isinstance(app.get("id"), str) or not app["id"]:
            return None
        identifier = app.get("identifier")
        return AppIdentity(app["id"], identifier if isinstance(identifier, str) else None)

    async def token_refused(self) -> bool:
        """Whether Saleor itself refuses this token, which proves its app is gone.

        Saleor 3.23.28 reads a token whose app was deleted (or deactivated) as no
        credentials at all (`AppByTokenLoader` finds no active app): `{ app { id } }` then
        answers HTTP 200 with `app: null`, or HTTP 401 `STOREFRONT_TRAFFIC_NOT_ALLOWED` on
        a shop that refuses anonymous traffic. An HTTP 401/403 or an authentication or
        permission error counts the same. A network failure, another status, an answer
        that cannot be read or one that names an app proves nothing: False."""
        try:
            response = await self.http.post(
                self.saleor_api_url,
                json={"query": load_query("app_id"), "variables": {}},
                headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            )
        except httpx.HTTPError:
            return False
        if response.status_code in (401, 403):
            return True
        if response.status_code not in (200, 400):
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        if not isinstance(body, dict):
            return False
        errors = body.get("errors")
        if errors:
            return isinstance(errors, list) and any(_auth_error(e) for e in errors)
        data = body.get("data")
        return (
            response.status_code == 200
            and isinstance(data, dict)
            and "app" in data
            and data["app"] is None
        )

    async def fetch_jwks(self) -> dict[str, Any]:
        try:
            response = await self.http.get(jwks_url(self.saleor_api_url))
            response.raise_for_status()
            jwks: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SaleorError("JWKS_NOT_AVAILABLE", f"cannot fetch Saleor's JWKS: {exc}") from exc
        if not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
            raise SaleorError("JWKS_NOT_AVAILABLE", "Saleor's JWKS holds no keys")
        return jwks
