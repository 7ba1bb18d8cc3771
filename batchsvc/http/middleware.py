"""Middleware, outermost first: request metrics, the error envelope and request context, then
auth and limits."""

from __future__ import annotations

import secrets
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from batchsvc.api_keys import KeyFileError
from batchsvc.errors import ApiError, ErrorCode
from batchsvc.http.appkeys import (
    API_POLICY,
    BATCH_POLICY,
    KEY_STORE,
    METRICS,
    RATE_HEADERS,
    RATE_LIMITER,
    STARTED,
    TENANT,
)
from batchsvc.http.body import ClientDisconnected
from batchsvc.http.responses import error_response, from_http_exception, service_crashed

log = structlog.get_logger("batchsvc.http")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"})

# nginx's non-standard status for "the client closed the connection before the answer": what
# the request metrics and the request log line record for a client that hung up mid-body, so
# that it counts neither as a server error (500) nor as a request answered.
CLIENT_CLOSED_REQUEST = 499


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by its matched route and final status.

    Outside the envelope, so that it sees the status the client gets, error envelopes
    included; the envelope turns every Exception into a response, so what still propagates
    here is a redirect-like HTTPException (counted with its status) or a cancellation.
    """
    started = time.monotonic()
    resource = request.match_info.route.resource
    # The canonical path (`/api/v1/memories/{id}`), never the raw one: ids would make a
    # time series per memory. Anything that matched no route shares one label.
    route = resource.canonical if resource is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _observe(request, route, exc.status, started)
        raise
    _observe(request, route, response.status, started)
    return response


def _observe(request: web.Request, route: str, status: int, started: float) -> None:
    seconds = time.monotonic() - started
    request.app[METRICS].request_finished(request.method, route, status, seconds)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every non-2xx response gets the spec's envelope; a crash never leaks its details."""
    request[STARTED] = time.monotonic()
    request_id = request.headers.get("X-Request-Id", "")
    if not (0 < len(request_id) <= 128 and request_id.isprintable()):
        request_id = "req_" + secrets.token_hex(8)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=request_id, method=request.method, path=request.path
    )
    try:
        response = await handler(request)
    except ApiError as error:
        response = error_response(error)
    except ClientDisconnected:
        # Any key holder could otherwise fill the error log and the 5xx rate by hanging up.
        # This response is never sent (aiohttp finds the connection closed and drops it).
        log.info("client_disconnected", reason="connection closed while the body was read")
        response = web.Response(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = from_http_exception(exc)
    except Exception:
        log.exception("request_crashed")
        response = error_response(service_crashed())
    response.headers.update(request.get(RATE_HEADERS, {}))
    response.headers["X-Request-Id"] = request_id
    elapsed_ms = round((time.monotonic() - request[STARTED]) * 1000, 2)
    log.info("request", status=response.status, duration_ms=elapsed_ms)
    return response


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 for a missing or unknown key, then the key's rate limit (429)."""
    if request.path in PUBLIC_PATHS or not request.path.startswith("/api/"):
        return await handler(request)
    token = _bearer(request)
    try:
        key = request.app[KEY_STORE].authenticate(token) if token else None
    except KeyFileError:
        # The server cannot tell a good key from a bad one: not the client's fault (never
        # 401), nothing served (fail closed). KeyStore logged which file and why.
        raise ApiError(
            ErrorCode.BACKEND_UNAVAILABLE,
            "the server cannot read its API keys; an operator must repair the keys file",
            {"reason": "keys_file_unreadable"},
        ) from None
    if key is None:
        raise ApiError(
            ErrorCode.UNAUTHORIZED,
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="batchsvc"'},
        )
    is_batch = request.path == "/api/v1/batch"
    policy = request.app[BATCH_POLICY] if is_batch else request.app[API_POLICY]
    decision = request.app[RATE_LIMITER].hit(key.key_id, policy)
    request[RATE_HEADERS] = decision.headers()
    if not decision.allowed:
        request.app[METRICS].request_rate_limited("batch" if is_batch else "api")
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            f"rate limit exceeded: {policy.quota} requests per {policy.window_seconds} s",
            {
                "limit": policy.quota,
                "window_seconds": policy.window_seconds,
                "retry_after_seconds": decision.reset_seconds,
            },
        )
    request[TENANT] = key.tenant
    structlog.contextvars.bind_contextvars(tenant=key.tenant, key_id=key.key_id)
    return await handler(request)
