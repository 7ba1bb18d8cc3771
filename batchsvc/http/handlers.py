"""Handlers: decode the request into core types, call the executor, encode the result."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from batchsvc.batch.failures import storage_failure
from batchsvc.batch.results import BatchResult
from batchsvc.errors import ApiError, BackendError, ErrorCode, FieldError
from batchsvc.http.appkeys import CONFIG, EXECUTOR, METRICS, STARTED, STORAGE, TENANT
from batchsvc.http.body import read_json
from batchsvc.http.responses import json_response, success
from batchsvc.models import MEMORY_TYPES
from batchsvc.request.batch_body import (
    BatchOptions,
    BatchRequest,
    batch_id_from_header,
    decode_batch,
)
from batchsvc.request.fields import want_choice, want_int, want_string
from batchsvc.request.operations import decode_operation
from batchsvc.storage import ChecksReadiness, Readiness

routes = web.RouteTableDef()
log = structlog.get_logger("batchsvc.http")

# One memory by id. `search` is the search endpoint's own segment, never an id: GET, PATCH or
# DELETE on /api/v1/memories/search answer 405 (Allow: POST), as its OpenAPI path says.
MEMORY_PATH = "/api/v1/memories/{id:(?!search$)[^/]+}"


@routes.post("/api/v1/batch")
async def batch(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    executor = request.app[EXECUTOR]
    body = await read_json(request, config.limits.max_body_bytes)
    batch_request = decode_batch(
        body, config.limits, supports_transactions=executor.storage.supports_transactions
    )
    batch_id = batch_id_from_header(request.headers.get("X-Batch-Id"))
    structlog.contextvars.bind_contextvars(batch_id=batch_id)
    metrics = request.app[METRICS]
    try:
        with metrics.batches_in_flight.track_inprogress():
            result = await executor.execute(
                request[TENANT], batch_request, batch_id, request[STARTED]
            )
    except ApiError:
        metrics.batch_errored(len(batch_request.operations))
        raise
    seconds = time.monotonic() - request[STARTED]
    metrics.batch_finished(
        result, validate_only=batch_request.options.validate_only, seconds=seconds
    )
    _log_batch(result, batch_request.options, config.storage.backend, seconds)
    data = result.to_json(int(seconds * 1000))
    headers = {"X-Batch-Id": batch_id}
    if result.atomic_failed_index is not None:
        error = ApiError(
            ErrorCode.ATOMIC_BATCH_FAILED,
            "an operation failed, so the atomic batch changed nothing",
            {"failed_index": result.atomic_failed_index},
        )
        return json_response({**error.envelope(), "data": data}, 422, headers)
    return success(data, 200 if result.all_succeeded else 207, headers)


def _log_batch(result: BatchResult, options: BatchOptions, backend: str, seconds: float) -> None:
    """One event per batch, and a warning per failed operation (its index, type and code).
    The request's context (request, batch and key ids, tenant) is bound already; what the
    memories hold (content, titles, metadata, queries) and error messages never go in."""
    for op in result.operations:
        if op.status == "failed" and op.error is not None:
            log.warning("operation_failed", index=op.index, type=op.type, code=op.error.code.value)
    log.info(
        "batch",
        backend=backend,
        operations=len(result.operations),
        statuses=dict(Counter(op.status for op in result.operations)),
        types=dict(Counter(str(op.type) for op in result.operations)),
        validate_only=options.validate_only,
        atomic=options.atomic,
        duration_ms=round(seconds * 1000, 2),
    )


async def _one(request: web.Request, raw_op: dict[str, Any], status: int = 200) -> web.Response:
    """Run one operation through the executor, as a one-operation batch, and answer alone."""
    config = request.app[CONFIG]
    op = decode_operation(raw_op, 0, [raw_op["type"]], config.limits)
    options = BatchOptions(parallel=False, timeout_ms=config.limits.default_timeout_ms)
    batch_id = batch_id_from_header(None)
    result: BatchResult = await request.app[EXECUTOR].execute(
        request[TENANT], BatchRequest([op], options), batch_id, request[STARTED]
    )
    request.app[METRICS].batch_finished(result, validate_only=False, single=True)
    outcome = result.operations[0]
    if outcome.status == "success":
        return success(outcome.result, status)
    assert outcome.error is not None
    raise outcome.error.api_error()


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, request.app[CONFIG].limits.max_body_bytes)
    if not isinstance(body, dict):
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "the body must be a JSON object",
            {"field": "body", "reason": "must_be_object"},
        )
    return body


@routes.post("/api/v1/memories")
async def create_memory(request: web.Request) -> web.Response:
    data = await _object_body(request)
    return await _one(request, {"type": "create", "data": data}, status=201)


@routes.get(MEMORY_PATH)
async def read_memory(request: web.Request) -> web.Response:
    return await _one(request, {"type": "read", "id": request.match_info["id"]})


@routes.patch(MEMORY_PATH)
async def update_memory(request: web.Request) -> web.Response:
    data = await _object_body(request)
    return await _one(request, {"type": "update", "id": request.match_info["id"], "data": data})


@routes.delete(MEMORY_PATH)
async def delete_memory(request: web.Request) -> web.Response:
    return await _one(request, {"type": "delete", "id": request.match_info["id"]})


@routes.post("/api/v1/memories/search")
async def search_memories(request: web.Request) -> web.Response:
    body = await _object_body(request)
    if "type" in body:
        raise ApiError.from_field_error(
            FieldError("type", "unknown_field", "the search endpoint takes query and options only")
        )
    return await _one(request, {**body, "type": "search"})


def _list_params(request: web.Request) -> dict[str, Any]:
    query = request.query
    limits = request.app[CONFIG].limits
    for name in query:
        if name not in ("limit", "cursor", "tag", "memory_type"):
            raise FieldError(name, "unknown_parameter", f"unknown query parameter {name!r}")
    tags = query.getall("tag", ())
    for tag in tags:
        want_string(tag, "tag", min_len=1, max_len=limits.max_tag_chars, blank=False)
    params: dict[str, Any] = {"tags": tuple(tags)}
    if "limit" in query:
        text = query["limit"]
        # isdigit() alone admits digits int() refuses ("²"); a very long digit string is out
        # of range anyway, and int() refuses those past 4,300 digits.
        if not (text.isascii() and text.isdigit()):
            raise FieldError("limit", "must_be_integer", "limit must be an integer")
        digits = text.lstrip("0") or "0"
        params["limit"] = want_int(int(digits) if len(digits) <= 9 else 10**9, "limit", 1, 100)
    else:
        params["limit"] = 20
    if "memory_type" in query:
        params["memory_type"] = want_choice(query["memory_type"], "memory_type", MEMORY_TYPES)
    params["cursor"] = query.get("cursor")
    return params


@routes.get("/api/v1/memories")
async def list_memories(request: web.Request) -> web.Response:
    try:
        params = _list_params(request)
    except FieldError as error:
        raise ApiError.from_field_error(error) from None
    try:
        page = await request.app[STORAGE].list(request[TENANT], **params)
    except ValueError:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "cursor is not one this service gave out",
            {"field": "cursor", "reason": "invalid_cursor"},
        ) from None
    except BackendError as error:
        # The same answers a read gets from a failing backend (the executor's mapping).
        raise storage_failure(error, "read").api_error() from error
    items = [memory.to_json() for memory in page.items]
    return success({"items": items, "next_cursor": page.next_cursor})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready means able to serve writes: asked of a backend that can tell (`ChecksReadiness`,
    a real write, rate-limited by the backend); of any other, whether it answers at all."""
    storage = request.app[STORAGE]
    try:
        if isinstance(storage, ChecksReadiness):
            readiness = await storage.readiness()
        else:
            await storage.ping()
            readiness = Readiness(True)
    except (BackendError, OSError) as error:
        raise ApiError(
            ErrorCode.BACKEND_UNAVAILABLE, "the storage backend does not answer", {}
        ) from error
    if not readiness.ready:
        # The public answer says why in a word; the log, for operators, names the file.
        reason = readiness.reason or "unavailable"
        log.warning("not_ready", reason=reason, error=readiness.message)
        raise ApiError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"the storage backend cannot serve writes ({reason})",
            {"reason": reason},
        )
    return json_response({"status": "ready"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    # Public like /healthz, and outside /api/ so that scrapes never spend a key's rate limit.
    return web.Response(
        body=request.app[METRICS].exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
