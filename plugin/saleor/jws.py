"""Verification of Saleor's signatures: detached RS256 JWS on webhooks, JWTs from the dashboard.

Saleor signs with one RSA key published at `<origin>/.well-known/jwks.json`; the
signature covers the raw body bytes (RFC 7797, `b64: false`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import PyJWTError


class SignatureError(Exception):
    """The signature is missing, malformed, made with an unknown key or does not match."""


class UnknownKeyError(SignatureError):
    """The signature names a key id that the cached JWKS does not hold (maybe rotated)."""


# Saleor's kid is an RFC 7638 thumbprint (43 characters); anything far longer is not one.
MAX_KID_LENGTH = 128


def key_id(token: str) -> str | None:
    """The `kid` a compact JWS/JWT names (None when it names none); SignatureError when
    the token is malformed or not RS256."""
    if not token or token.count(".") != 2:
        raise SignatureError("missing or malformed signature")
    try:
        header = jwt.get_unverified_header(token)
    except PyJWTError as exc:
        raise SignatureError(f"malformed signature header: {exc}") from exc
    if header.get("alg") != "RS256":
        raise SignatureError(f"unexpected signature algorithm {header.get('alg')!r}")
    kid = header.get("kid")
    if kid is None:
        return None
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise SignatureError("malformed key id")
    return kid


def holds_key(jwks: dict[str, Any], kid: str) -> bool:
    keys = jwks.get("keys")
    return isinstance(keys, list) and any(isinstance(k, dict) and k.get("kid") == kid for k in keys)


@lru_cache(maxsize=256)
def _public_key(jwk_json: str) -> Any:
    # Parsing a JWK costs more than verifying; the cache keys on the exact JWK text.
    return RSAAlgorithm.from_jwk(jwk_json)


def _key_for(header: dict[str, Any], jwks: dict[str, Any]) -> Any:
    if header.get("alg") != "RS256":
        raise SignatureError(f"unexpected signature algorithm {header.get('alg')!r}")
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
    kid = header.get("kid")
    matching = [k for k in keys if k.get("kid") == kid] if kid else keys
    if not matching:
        raise UnknownKeyError(f"no key with kid {kid!r} in the JWKS")
    return _public_key(json.dumps(matching[0], sort_keys=True))


def verify_detached(signature: str, body: bytes, jwks: dict[str, Any]) -> None:
    """Raise SignatureError unless `signature` is a valid detached JWS of `body`."""
    if not signature or signature.count(".") != 2:
        raise SignatureError("missing or malformed signature")
    try:
        header = jwt.get_unverified_header(signature)
    except PyJWTError as exc:
        raise SignatureError(f"malformed signature header: {exc}") from exc
    if header.get("b64") is not False or "b64" not in (header.get("crit") or []):
        raise SignatureError("signature is not a detached, unencoded-payload JWS")
    key = _key_for(header, jwks)
    try:
        jwt.api_jws.decode_complete(signature, key=key, algorithms=["RS256"], detached_payload=body)
    except PyJWTError as exc:
        raise SignatureError(f"signature does not match: {exc}") from exc


def verify_jwt(
    token: str, jwks: dict[str, Any], *, issuer: str, audience: str | None = None
) -> dict[str, Any]:
    """Decode a Saleor-issued RS256 JWT (app or extension access token) and return its claims."""
    try:
        header = jwt.get_unverified_header(token)
    except PyJWTError as exc:
        raise SignatureError(f"malformed token: {exc}") from exc
    key = _key_for(header, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "iss"], "verify_aud": audience is not None},
        )
    except PyJWTError as exc:
        raise SignatureError(f"invalid token: {exc}") from exc
    return claims
