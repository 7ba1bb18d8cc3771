"""One attempt of one operation against storage: what each operation type calls and returns."""

from __future__ import annotations

from typing import Any

import structlog
from attrs import evolve

from batchsvc.batch.embeddings import EmbeddingFailed, update_vector
from batchsvc.batch.state import BatchState, OperationFailed, not_found
from batchsvc.embedding import Embedder
from batchsvc.errors import ErrorCode, TextChanged
from batchsvc.models import Memory, MemoryPatch, SearchQuery, utc_now
from batchsvc.request.operations import CreateOp, DeleteOp, Operation, ReadOp, SearchOp, UpdateOp
from batchsvc.storage import Vector

log = structlog.get_logger("batchsvc.batch.executor")
#: How many times an update is embedded and tried while other writes keep changing its text.
TEXT_TRIES = 3


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
            raise not_found(memory_id)
        return found.to_json()
    if isinstance(op, UpdateOp):
        updated = await _update(state, memory_id, op.patch, embedder, index)
        return {"id": updated.id, "updated_at": updated.updated_at, "version": updated.version}
    assert isinstance(op, DeleteOp)
    if not await ops.delete(tenant, memory_id):
        raise not_found(memory_id)
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
            raise not_found(memory_id)
        return updated
    log.warning("update_without_vector", id=memory_id, index=index, tries=TEXT_TRIES)
    updated = await state.ops.update(state.tenant, memory_id, patch, utc_now())
    if updated is None:
        raise not_found(memory_id)
    return updated


async def _update_vector(
    state: BatchState, memory_id: str, patch: MemoryPatch, embedder: Embedder | None
) -> tuple[Vector | None, str | None]:
    """The vector and text an update leaves; (None, None) if it keeps the text or no
    embedder runs. See `batch_vectors.update_vector` for the race this leaves."""
    # `embedder` is None unless the backend stores vectors too (the executor decides).
    if embedder is None or not patch.changes_text:
        return None, None
    try:
        found = await update_vector(embedder, state.ops, state.tenant, memory_id, patch)
    except EmbeddingFailed:
        raise OperationFailed(
            ErrorCode.BACKEND_UNAVAILABLE, "the embedder failed; nothing changed", {}
        ) from None
    if found is None:
        raise not_found(memory_id)
    return found


async def _search(state: BatchState, query: SearchQuery) -> dict[str, Any]:
    hits = await state.ops.search(state.tenant, query)
    return {"results": [hit.to_json() for hit in hits], "total": len(hits)}
