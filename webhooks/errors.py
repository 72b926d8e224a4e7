"""Error answers in the shape app-sdk uses, so the cause shows up in Saleor's delivery log."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from starlette.responses import JSONResponse


class RejectReason(enum.StrEnum):
    """Every code a webhook may be refused with: also the `reason` label of
    `crm_webhooks_rejected_total`, so a closed set."""

    BAD_REQUEST = "BAD_REQUEST"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    WRONG_EVENT = "WRONG_EVENT"
    MISSING_SALEOR_API_URL = "MISSING_SALEOR_API_URL"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    NOT_REGISTERED = "NOT_REGISTERED"
    SIGNATURE_VERIFICATION_FAILED = "SIGNATURE_VERIFICATION_FAILED"
    KEYS_UNAVAILABLE = "KEYS_UNAVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"code": code, "message": message}},
        status_code=status,
        headers=headers,
    )
