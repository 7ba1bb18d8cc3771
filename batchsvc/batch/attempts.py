"""An operation run on its own: its id resolved, its attempts against storage with retries of
transient faults (exponential backoff with full jitter, inside the batch deadline), and what
each operation type calls and returns in one attempt."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from attrs import evolve

from batchsvc.batch.deadline import DeadlineExpired, await_until
from batchsvc.batch.embeddings import update_vector
from batchsvc.batch.failures import (
    OperationError,
    OperationFailed,
    dependency_failed,
    embedder_failed,
    invalid,
    not_found,
    operation_crashed,
    ran_past_deadline,
    ran_too_long,
    storage_busy,
    storage_failure,
)
from batchsvc.batch.results import OperationResult
from batchsvc.batch.runtime import Runtime
from batchsvc.batch.state import BatchState
from batchsvc.embedding import Embedder
from batchsvc.errors import (
    BackendError,
    EmbeddingFailed,
    FieldError,
    TextChanged,
    TransientBackendError,
)
from batchsvc.models import Memory, MemoryPatch, SearchQuery, utc_now
from batchsvc.request.operations import (
    CreateOp,
    DeleteOp,
    InvalidOperation,
    Operation,
    ReadOp,
    Ref,
    SearchOp,
    UpdateOp,
)
from batchsvc.storage import Vector

log = structlog.get_logger("batchsvc.batch.executor")
#: How many times an update is embedded and tried while other writes keep changing its text.
TEXT_TRIES = 3
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


class _Retryable(Exception):
    """A failed attempt that a retry may fix; carries the error to report if none does."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(error.message)
        self.error = error


async def run_alone(rt: Runtime, state: BatchState, index: int) -> None:
    """Run the operation at `index` on its own, and record its result."""
    op = state.operations[index]
    result = state.results[index]
    if isinstance(op, InvalidOperation):
        result.fail_validation(op.error)
        return
    if index in state.vectors.failed:
        result.fail(embedder_failed())
        return
    try:
        memory_id = _resolve(state, op)
        result.succeed(await _attempts(rt, state, op, memory_id, result))
    except OperationFailed as failure:
        result.fail(failure.error)


def _resolve(state: BatchState, op: Operation) -> str | None:
    if isinstance(op, CreateOp | SearchOp):
        return None
    if isinstance(op.id, Ref):
        target = op.id.index
        if target not in state.created:
            raise OperationFailed(dependency_failed(target))
        return state.created[target]
    return op.id


async def _attempts(
    rt: Runtime, state: BatchState, op: Operation, memory_id: str | None, result: OperationResult
) -> dict[str, Any]:
    # A create keeps its id across attempts: a failed attempt had no effect, so reusing
    # it cannot collide, and the client sees one id whatever happened.
    new_id = state.new_ids.get(result.index)
    while True:
        result.attempts += 1
        try:
            return await _attempt(rt, state, op, memory_id, new_id, result.index)
        except _Retryable as fault:
            delay = backoff(result.attempts, rt.jitter())
            last = result.attempts > state.options.max_retries
            if last or rt.clock() + delay >= state.deadline:
                tried = evolve(fault.error, details={"attempts": result.attempts})
                raise OperationFailed(tried) from None
            await rt.sleep(delay)


def backoff(attempts: int, jitter: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, base * 2^(attempts-1)], capped;
    `jitter` is a draw from [0, 1)."""
    ceiling: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1))
    return ceiling * jitter


async def _attempt(
    rt: Runtime,
    state: BatchState,
    op: Operation,
    memory_id: str | None,
    new_id: str | None,
    index: int,
) -> dict[str, Any]:
    until = rt.call_until(state)
    try:
        call = call_storage(state, op, memory_id, new_id, index, rt.embedder)
        return await await_until(call, until)
    except DeadlineExpired:
        if rt.clock() >= state.deadline:
            raise OperationFailed(ran_past_deadline(state.options.timeout_ms)) from None
        raise _Retryable(ran_too_long(rt.limits.operation_timeout_ms)) from None
    except TransientBackendError as error:
        raise _Retryable(storage_busy(error)) from None
    except FieldError as error:
        raise OperationFailed(invalid(error)) from None
    except BackendError as error:
        failure = storage_failure(error, "operation", logged_as="backend_error", index=index)
        raise OperationFailed(failure) from None
    except OperationFailed:
        raise
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # a real cancellation of this batch: let it unwind
        # The backend raised CancelledError of its own accord: a fault in it, not ours.
        log.error("backend_raised_cancelled", index=index, type=op.type)
        raise OperationFailed(operation_crashed()) from None
    except Exception:
        log.exception("operation_crashed", index=index, type=op.type)
        raise OperationFailed(operation_crashed()) from None


async def call_storage(
    state: BatchState,
    op: Operation,
    memory_id: str | None,
    new_id: str | None,
    index: int,
    embedder: Embedder | None,
) -> dict[str, Any]:
    """One attempt of `op` against storage; its result, or OperationFailed."""
    tenant, ops = state.tenant, state.ops
    if isinstance(op, CreateOp):
        assert new_id is not None
        memory = op.data.build(new_id, utc_now())
        await ops.create(tenant, memory, state.vectors.vectors.get(index))
        state.created[index] = memory.id
        return {"id": memory.id, "created_at": memory.created_at}
    if isinstance(op, SearchOp):
        query = op.query
        if query.mode != "lexical":
            query = evolve(query, vector=state.vectors.vectors[index])
        return await _search(state, query)
    assert memory_id is not None
    if isinstance(op, ReadOp):
        found = await ops.get(tenant, memory_id)
        if found is None:
            raise OperationFailed(not_found(memory_id))
        return found.to_json()
    if isinstance(op, UpdateOp):
        updated = await _update(state, memory_id, op.patch, embedder, index)
        return {"id": updated.id, "updated_at": updated.updated_at, "version": updated.version}
    assert isinstance(op, DeleteOp)
    if not await ops.delete(tenant, memory_id):
        raise OperationFailed(not_found(memory_id))
    return {"id": memory_id, "deleted": True}


async def _update(
    state: BatchState, memory_id: str, patch: MemoryPatch, embedder: Embedder | None, index: int
) -> Memory:
    """Apply an update, with the vector of the text it leaves when it changes text.

    The text is read and embedded before the backend applies the patch under its own lock;
    another batch may change the title or content in between. The backend then refuses the
    update (TextChanged, nothing changed) and it is read, embedded and tried again. Past
    TEXT_TRIES such races the update goes in without a vector: the memory then has none,
    which is true, rather than one of a text it never had."""
    for _ in range(TEXT_TRIES):
        vector, text = await _update_vector(state, memory_id, patch, embedder)
        try:
            updated = await state.ops.update(
                state.tenant, memory_id, patch, utc_now(), vector, text
            )
        except TextChanged:
            log.info("update_text_changed", id=memory_id, index=index)
            continue
        if updated is None:
            raise OperationFailed(not_found(memory_id))
        return updated
    log.warning("update_without_vector", id=memory_id, index=index, tries=TEXT_TRIES)
    updated = await state.ops.update(state.tenant, memory_id, patch, utc_now())
    if updated is None:
        raise OperationFailed(not_found(memory_id))
    return updated


async def _update_vector(
    state: BatchState, memory_id: str, patch: MemoryPatch, embedder: Embedder | None
) -> tuple[Vector | None, str | None]:
    """The vector and text an update leaves; (None, None) if it keeps the text or no
    embedder runs. See `embeddings.update_vector` for the race this leaves."""
    # `embedder` is None unless the backend stores vectors too (the executor decides).
    if embedder is None or not patch.changes_text:
        return None, None
    try:
        found = await update_vector(embedder, state.ops, state.tenant, memory_id, patch)
    except EmbeddingFailed:
        raise OperationFailed(embedder_failed()) from None
    if found is None:
        raise OperationFailed(not_found(memory_id))
    return found


async def _search(state: BatchState, query: SearchQuery) -> dict[str, Any]:
    hits = await state.ops.search(state.tenant, query)
    return {"results": [hit.to_json() for hit in hits], "total": len(hits)}
