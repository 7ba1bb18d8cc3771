"""One attempt of one operation against storage: what each operation type calls and returns."""

from __future__ import annotations

from typing import Any

import structlog
from attrs import evolve

from batchsvc.batch_vectors import EmbeddingFailed, update_vector
from batchsvc.embedding import Embedder, embedding_text
from batchsvc.errors import ErrorCode
from batchsvc.models import MemoryPatch, SearchQuery, utc_now
from batchsvc.operations import CreateOp, DeleteOp, Operation, ReadOp, SearchOp, UpdateOp
from batchsvc.run_state import BatchRun, OperationFailed, not_found
from batchsvc.storage import Vector

log = structlog.get_logger("batchsvc.executor")


async def call_storage(
    run: BatchRun,
    op: Operation,
    memory_id: str | None,
    new_id: str | None,
    index: int,
    embedder: Embedder | None,
) -> dict[str, Any]:
    """One attempt of `op` against storage; its result, or OperationFailed."""
    tenant, ops = run.tenant, run.ops
    if isinstance(op, CreateOp):
        assert new_id is not None
        memory = op.data.build(new_id, utc_now())
        await ops.create(tenant, memory, run.vectors.vectors.get(index))
        run.created[index] = memory.id
        return {"id": memory.id, "created_at": memory.created_at}
    if isinstance(op, SearchOp):
        query = op.query
        if query.mode != "lexical":
            query = evolve(query, vector=run.vectors.vectors[index])
        return await _search(run, query)
    assert memory_id is not None
    if isinstance(op, ReadOp):
        found = await ops.get(tenant, memory_id)
        if found is None:
            raise not_found(memory_id)
        return found.to_json()
    if isinstance(op, UpdateOp):
        vector, text = await _update_vector(run, memory_id, op.patch, embedder)
        updated = await ops.update(tenant, memory_id, op.patch, utc_now(), vector)
        if updated is None:
            raise not_found(memory_id)
        if text is not None and embedding_text(updated.title, updated.content) != text:
            log.warning("stale_vector", id=memory_id, index=index)
        return {"id": updated.id, "updated_at": updated.updated_at, "version": updated.version}
    assert isinstance(op, DeleteOp)
    if not await ops.delete(tenant, memory_id):
        raise not_found(memory_id)
    return {"id": memory_id, "deleted": True}


async def _update_vector(
    run: BatchRun, memory_id: str, patch: MemoryPatch, embedder: Embedder | None
) -> tuple[Vector | None, str | None]:
    """The vector and text an update leaves; (None, None) if it keeps the text or no
    embedder runs. See `batch_vectors.update_vector` for the race this leaves."""
    # `embedder` is None unless the backend stores vectors too (the executor decides).
    if embedder is None or not patch.changes_text:
        return None, None
    try:
        found = await update_vector(embedder, run.ops, run.tenant, memory_id, patch)
    except EmbeddingFailed:
        raise OperationFailed(
            ErrorCode.BACKEND_UNAVAILABLE, "the embedder failed; nothing changed", {}
        ) from None
    if found is None:
        raise not_found(memory_id)
    return found


async def _search(run: BatchRun, query: SearchQuery) -> dict[str, Any]:
    hits = await run.ops.search(run.tenant, query)
    return {"results": [hit.to_json() for hit in hits], "total": len(hits)}
