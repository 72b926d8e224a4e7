"""Typed API errors: every failure a client sees carries `extensions.code`, never a traceback.

Resolvers raise an `ApiError` subclass; `format_error` turns graphql-core errors into the
response shape and masks anything unexpected as INTERNAL_ERROR (logged with its traceback).
"""

from __future__ import annotations

import enum
import logging
from typing import Any, ClassVar

from graphql import GraphQLError

logger = logging.getLogger(__name__)


class ErrorCode(enum.StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    CONFLICT = "CONFLICT"
    # Passing: the same request may succeed a little later (`retryAfter` seconds).
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ApiError(Exception):
    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(ApiError):
    code = ErrorCode.UNAUTHENTICATED


class Unavailable(ApiError):
    code = ErrorCode.UNAVAILABLE


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND


class InvalidInput(ApiError):
    code = ErrorCode.INVALID_INPUT


class Conflict(ApiError):
    code = ErrorCode.CONFLICT


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """A request-level error (before execution): the same shape as a resolver's error."""
    return {"errors": [{"message": message, "extensions": {"code": code.value}}]}


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    if isinstance(original, ApiError):
        code, message, extra = original.code, original.message, original.extensions
    elif original is None or not error.path:
        # Syntax, validation, depth and token limits, variables that do not coerce (a bad
        # date: the scalar's own error): the client's document is at fault. Anything
        # raised while resolving a field has a path.
        code, message, extra = ErrorCode.INVALID_INPUT, error.message, {}
    else:
        logger.error("unexpected error in the GraphQL API", exc_info=original)
        code, message, extra = ErrorCode.INTERNAL_ERROR, "Internal error.", {}
    formatted: dict[str, Any] = {"message": message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = list(error.path)
    formatted["extensions"] = {"code": code.value, **extra}
    return formatted
