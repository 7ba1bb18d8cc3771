"""The vectors a batch needs, made before it runs: one embedder call for the whole batch.

A batch of 100 creates embeds once, not 100 times: the texts of every valid create and the
query of every semantic or hybrid search go to the embedder together, before any operation
starts (and before an atomic batch takes its transaction, which is then held no longer than
it must). An update's new text depends on the memory as it is when the update runs, so it is
embedded then, one call per text-changing update (see `update_vector`).
"""

from __future__ import annotations

import asyncio

import structlog
from attrs import define, field

from batchsvc.embedding import Embedder, embedding_text
from batchsvc.errors import EmbeddingFailed
from batchsvc.models import UNSET, Memory, MemoryPatch
from batchsvc.request.operations import CreateOp, DecodedOperation, SearchOp
from batchsvc.storage import MemoryOps, Vector

log = structlog.get_logger("batchsvc.embedding")


@define
class BatchVectors:
    """Vectors by operation index; `failed` holds the operations that needed one in vain."""

    vectors: dict[int, Vector] = field(factory=dict)
    failed: set[int] = field(factory=set)


def _texts(operations: list[DecodedOperation]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for index, op in enumerate(operations):
        if isinstance(op, CreateOp):
            texts[index] = embedding_text(op.data.title, op.data.content)
        elif isinstance(op, SearchOp) and op.query.mode != "lexical":
            texts[index] = op.query.text
    return texts


async def embed_texts(embedder: Embedder, texts: list[str]) -> list[Vector]:
    """The embedder's vectors for `texts`, checked; any fault becomes EmbeddingFailed."""
    try:
        vectors = await embedder.embed(texts)
    except Exception as error:
        log.error("embedder_failed", texts=len(texts), error=repr(error))
        raise EmbeddingFailed(str(error)) from error
    if len(vectors) != len(texts) or any(len(v) != embedder.dimensions for v in vectors):
        log.error("embedder_wrong_shape", texts=len(texts), vectors=len(vectors))
        raise EmbeddingFailed("the embedder returned vectors of the wrong number or size")
    return vectors


async def embed_batch(
    embedder: Embedder, operations: list[DecodedOperation], until: float
) -> BatchVectors:
    """Vectors for the batch's creates and semantic or hybrid searches, in one call.

    `until` is the batch deadline on the loop's clock. Past it, or when the embedder fails,
    every operation that needed a vector is in `failed`; the executor fails those alone (the
    deadline, checked first, skips them with TIMEOUT instead)."""
    texts = _texts(operations)
    if not texts:
        return BatchVectors()
    try:
        async with asyncio.timeout_at(until):
            vectors = await embed_texts(embedder, list(texts.values()))
    except (EmbeddingFailed, TimeoutError):
        return BatchVectors(failed=set(texts))
    return BatchVectors(dict(zip(texts, vectors, strict=True)))


def patched_text(current: Memory, patch: MemoryPatch) -> str:
    """The text a memory will have once `patch` applies to it."""
    title = current.title if patch.title is UNSET else patch.title
    content = current.content if patch.content is UNSET else patch.content
    return embedding_text(title, content)


async def update_vector(
    embedder: Embedder, ops: MemoryOps, tenant: str, memory_id: str, patch: MemoryPatch
) -> tuple[Vector, str] | None:
    """The vector of the text a text-changing update leaves, and that text; None if the
    memory does not exist. Raises EmbeddingFailed.

    The memory is read, patched and embedded before the backend's update applies the patch
    under its own lock. Within a batch nothing can come between (operations on one id run in
    order); across concurrent batches a change of the title or content can, and the backend's
    update, given the text, then refuses (`TextChanged`; see `attempts._update`).
    """
    current = await ops.get(tenant, memory_id)
    if current is None:
        return None
    text = patched_text(current, patch)
    [vector] = await embed_texts(embedder, [text])
    return vector, text


__all__ = [
    "BatchVectors",
    "EmbeddingFailed",
    "embed_batch",
    "embed_texts",
    "patched_text",
    "update_vector",
]
