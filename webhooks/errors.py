"""Error answers in the shape app-sdk uses, so the cause shows up in Saleor's delivery log."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"code": code, "message": message}}, status_code=status
    )
