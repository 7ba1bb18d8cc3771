"""Reading a JSON body under API.md's rules: 415 (media type, then content coding), then 413
(never buffering past the limit, before or after decoding), then 400 INVALID_JSON."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from batchsvc.errors import ApiError, ErrorCode
from batchsvc.http.encoding import (
    SUPPORTED,
    DecodedTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
    content_coding,
    decode,
)


class ClientDisconnected(Exception):
    """The client closed the connection before its body arrived whole: nobody is left to
    answer, and it is no fault of the service (see `envelope_middleware`)."""


def _too_large(limit: int, provided: int | None) -> ApiError:
    details: dict[str, Any] = {"max_bytes": limit}
    if provided is not None:
        details["provided_bytes"] = provided
    return ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"request body exceeds {limit} bytes", details)


async def read_json(request: web.Request, limit: int) -> Any:
    coding = _checked_coding(request)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    raw = await _read_bounded(request, limit)
    if coding is not None:
        raw = _decoded(raw, coding, limit)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            ErrorCode.INVALID_JSON, "request body is not valid JSON", {"reason": str(error)}
        ) from None
    return body


def _checked_coding(request: web.Request) -> str | None:
    """The body's content coding, after its media type: both are 415 when unsupported."""
    if request.content_type != "application/json":
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
            {"content_type": request.content_type},
        )
    try:
        # Before the body is read: a coding we cannot undo makes the body unreadable.
        return content_coding(request.headers.get("Content-Encoding"))
    except UnsupportedEncoding as error:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Encoding must be one of {', '.join(SUPPORTED)}",
            {"content_encoding": error.coding},
        ) from None


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    try:
        # The app's client_max_size equals the limit, so aiohttp stops reading past it. With
        # a content coding this bounds the bytes received; `decode` bounds the decoded ones.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit, None) from None
    except ConnectionError as error:
        # aiohttp fails the body's stream with ConnectionResetError("Connection lost") when
        # the connection closes mid-body (ClientConnectionResetError, a subclass, in some
        # versions). A cancellation (handler_cancellation=True) is left to propagate.
        raise ClientDisconnected from error
    if len(raw) > limit:
        raise _too_large(limit, len(raw))
    return raw


def _decoded(raw: bytes, coding: str, limit: int) -> bytes:
    try:
        return decode(raw, coding, limit)
    except DecodedTooLarge:
        raise _too_large(limit, None) from None
    except UndecodableBody as error:
        # The client sent no JSON we can read: API.md's "body is not valid JSON" row.
        raise ApiError(
            ErrorCode.INVALID_JSON,
            f"request body could not be decoded as {coding} (its Content-Encoding)",
            {"reason": str(error)},
        ) from None
