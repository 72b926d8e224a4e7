"""`POST /graphql` (JSON) and GraphiQL on `GET /graphql`.

Never a 500: request-level problems are 400/413 with a typed error, a database outage is
503, everything inside execution is a typed error in the 200 response.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from strawberry.schema.exceptions import CannotGetOperationTypeError

from plugin.api.context import CURRENT, ApiContext
from plugin.api.errors import ErrorCode, error_body, format_error
from plugin.api.schema import schema
from plugin.context import AppContext
from plugin.kit.bodies import BadContentLength, BodyTooLarge, InvalidJson, parse_json, read_body

logger = logging.getLogger(__name__)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def _body(request: Request, limit: int) -> bytes:
    try:
        return await read_body(request, limit)
    except BodyTooLarge as exc:
        raise BadRequest(413, exc.message) from None
    except BadContentLength as exc:
        raise BadRequest(400, exc.message) from None


def _operation(body: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        payload = parse_json(body)
    except InvalidJson as exc:
        message = f"{exc.message} Send {{query, variables, operationName}}."
        raise BadRequest(400, message) from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "The body must be a JSON object.")
    query, variables, name = (
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(400, "`query` must be a non-empty string.")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest(400, "`variables` must be an object.")
    if name is not None and not isinstance(name, str):
        raise BadRequest(400, "`operationName` must be a string.")
    return query, variables, name


GRAPHIQL = Path(__file__).parent / "graphiql"
# Every asset is the app's own (`make graphiql` vendors them from npm): the page works
# offline and under a policy that lets nothing else load. GraphiQL sets inline styles
# and its CSS embeds its fonts.
GRAPHIQL_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


async def graphiql(request: Request) -> Response:
    page = HTMLResponse((GRAPHIQL / "index.html").read_text())
    page.headers["Content-Security-Policy"] = GRAPHIQL_POLICY
    return page


async def graphql(request: Request) -> Response:
    app: AppContext = request.app.state.ctx
    try:
        query, variables, name = _operation(
            await _body(request, app.settings.max_graphql_body_bytes)
        )
    except BadRequest as bad:
        return JSONResponse(
            error_body(ErrorCode.INVALID_INPUT, bad.message), status_code=bad.status
        )
    api: ApiContext | None = None
    token = None
    try:
        api = await ApiContext.open(app, request.headers)
        token = CURRENT.set(api)
        result = await schema.execute(
            query, variable_values=variables, context_value=api, operation_name=name
        )
    except CannotGetOperationTypeError:
        # The document parsed, but `operationName` names none of its operations.
        message = f"No operation named {name!r} in the document." if name else "No operation."
        return JSONResponse(error_body(ErrorCode.INVALID_INPUT, message), status_code=400)
    except Exception:
        logger.exception("GraphQL request failed outside execution")
        return JSONResponse(
            error_body(ErrorCode.INTERNAL_ERROR, "The service is unavailable; retry later."),
            status_code=503,
        )
    finally:
        if token is not None:
            CURRENT.reset(token)
        if api is not None:
            await api.close()
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [format_error(error) for error in result.errors]
    return JSONResponse(body)


def routes() -> list[BaseRoute]:
    return [
        Route("/graphql", graphiql, methods=["GET"]),
        Route("/graphql", graphql, methods=["POST"]),
        Mount("/graphql/assets", app=StaticFiles(directory=GRAPHIQL, check_dir=False)),
    ]
