"""Requests aiohttp's parser refuses (an oversized header line, Content-Length together with
Transfer-Encoding, a duplicate Content-Type, a bad chunk size, a bad method): answered in the
API's envelope, 400 VALIDATION_ERROR with an X-Request-Id, and logged at info.

Why this module reaches into aiohttp: such a request never reaches the app or its
middlewares. The connection's `RequestHandler.handle_error` answers it in plain text that
echoes the bytes the parser choked on, and logs a traceback at error level. aiohttp has no
public hook for that answer (aio-libs/aiohttp#3287, open since 2018). So this module, and
only this one, relies on aiohttp internals:

- `Application._make_handler`, which every runner calls to build the app's `web.Server`
  (`web.run_app`, `web.AppRunner`, the test client's);
- `web.Server.__call__`, `_loop`, `_kwargs`: the server builds each connection's handler;
- `RequestHandler.handle_error(request, status, exc, message)`, overridden here.

tests/http/test_protocol_errors.py checks each of them, and fails loudly if aiohttp changes them.
"""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import (
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from batchsvc.errors import ApiError, ErrorCode
from batchsvc.http.responses import error_response, service_crashed

log = structlog.get_logger("batchsvc.http")

# Parser errors whose own message echoes what the client sent: ours instead. BadStatusLine
# covers BadHttpMethod (and TLS sent to the plain HTTP port).
KNOWN_ERRORS: tuple[tuple[type[HttpProcessingError], str, str], ...] = (
    (LineTooLong, "line_too_long", "a request line or header line is too long"),
    (InvalidHeader, "invalid_header", "a header is malformed"),
    (BadStatusLine, "invalid_request_line", "the request line is not valid HTTP/1.1"),
    (InvalidURLError, "invalid_target", "the request target is not a valid URL"),
)
GENERIC = "the request is not valid HTTP/1.1"


def describe(exc: BaseException | None) -> tuple[str, str]:
    """`details.reason` and the message for a request the parser refused."""
    for kind, reason, message in KNOWN_ERRORS:
        if isinstance(exc, kind):
            return reason, message
    # The rest carry a description on their first line (llhttp's reason, or aiohttp's own
    # sentence such as "Duplicate 'Content-Type' header found."), the echoed bytes below it.
    first = ""
    if isinstance(exc, HttpProcessingError) and exc.message:
        first = exc.message.splitlines()[0].strip().rstrip(":.")
    if not first or not first.isprintable():
        return "malformed_request", GENERIC
    return "malformed_request", f"malformed HTTP request: {first[:120]}"


class EnvelopeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors in the envelope."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # As aiohttp's own: once part of a response is out, no other can follow.
        if request.writer.output_size > 0:
            raise ConnectionError("a response has started; no error response can follow")
        # The request's headers may not have been parsed: the id is always ours.
        request_id = "req_" + secrets.token_hex(8)
        if status >= 500:
            # Reached only when something escaped the middlewares (500), or a handler's
            # asyncio.TimeoutError did (504): the service's fault, logged as a crash.
            log.error("request_crashed", request_id=request_id, status=status, exc_info=exc)
            if status == 504:
                error = ApiError(ErrorCode.TIMEOUT, "the request timed out", status=504)
            else:
                error = service_crashed(status)
        else:
            reason, text = describe(exc)
            log.info("bad_http_request", request_id=request_id, status=status, reason=reason)
            error = ApiError(ErrorCode.VALIDATION_ERROR, text, {"reason": reason}, status=status)
        response = error_response(error)
        response.headers["X-Request-Id"] = request_id
        response.force_close()  # the parser cannot find the next request after an error
        return response


class _EnvelopeServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        # As web.Server.__call__, with the handler class replaced.
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


def answer_protocol_errors_in_envelope(app: web.Application) -> None:
    """Make every server built for `app` use EnvelopeRequestHandler."""
    make_server = app._make_handler

    def _make_handler(**kwargs: Any) -> web.Server:
        server = make_server(**kwargs)
        # The server exactly as aiohttp built it (whatever its arguments), but for the class
        # of the connection handlers it makes; _EnvelopeServer adds no state.
        server.__class__ = _EnvelopeServer
        return server

    app._make_handler = _make_handler  # type: ignore[method-assign]
