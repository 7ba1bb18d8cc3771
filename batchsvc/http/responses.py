"""JSON responses in the spec's envelopes, encoded with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from batchsvc.errors import ApiError, ErrorCode


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def success(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"success": True, "data": data}, status, headers)


def error_response(error: ApiError) -> web.Response:
    return json_response(error.envelope(), error.status, error.headers)


# The framework's own errors, rewritten into the envelope. API.md's codes are a closed set with
# no code of its own for a wrong method, so a 405 says NOT_FOUND (no such method here) and
# keeps its `Allow` header; the status tells the two apart.
FRAMEWORK_CODES = {
    404: (ErrorCode.NOT_FOUND, "no such route"),
    405: (ErrorCode.NOT_FOUND, "this route does not accept that method"),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, "request body too large"),
}


def service_crashed(status: int = 500) -> ApiError:
    """INTERNAL_ERROR for a fault of the service's own (a bug): nothing of it is shown, and it
    is in the log, with the request's id."""
    return ApiError(
        ErrorCode.INTERNAL_ERROR, "an unexpected error occurred; it was logged", status=status
    )


def from_http_exception(exc: web.HTTPException) -> web.Response:
    code, message = FRAMEWORK_CODES.get(
        exc.status, (ErrorCode.VALIDATION_ERROR, exc.reason or "bad request")
    )
    if exc.status >= 500:
        code, message = ErrorCode.INTERNAL_ERROR, "internal error"
    details: dict[str, Any] = {}
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        details = {"method": exc.method, "allowed_methods": sorted(exc.allowed_methods)}
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in ("content-type", "content-length")
    }
    error = ApiError(code, message, details, status=exc.status, headers=headers)
    return error_response(error)
