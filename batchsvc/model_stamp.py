"""Which model made the stored vectors: checked when the service starts, set by `reembed`.

Vectors of two models do not compare: a query embedded by one, ranked against vectors of
another, returns noise with confident scores (or, when the sizes differ, every create fails).
A backend whose vectors outlive the process (`batchsvc.storage.DurableVectors`) therefore keeps
a stamp naming their model, and the service refuses to start with another embedder, saying
what to do. `batchsvc reembed` embeds every memory again with the configured embedder.
"""

from __future__ import annotations

from batchsvc.embedding import Embedder
from batchsvc.storage import UNFINISHED_REEMBED, DurableVectors, Storage


class VectorsMismatch(Exception):
    """The stored vectors were made by another model than the configured embedder's."""


def stamp_of(embedder: Embedder) -> str:
    """What names the embedder's vectors: its `model` when it has one (the model and whatever
    changes its vectors, such as a truncated dimension), else its class and dimensions."""
    model = getattr(embedder, "model", None)
    if isinstance(model, str) and model:
        return model
    kind = type(embedder)
    return f"{kind.__module__}.{kind.__qualname__} ({embedder.dimensions} dimensions)"


async def check_vectors(storage: Storage, embedder: Embedder) -> None:
    """Return if the stored vectors are the embedder's, stamping the store when it has no
    vectors, or has no stamp yet (a file older than stamps) and only vectors of the embedder's
    size; raise VectorsMismatch if not, or if a re-embedding stopped part way."""
    if not isinstance(storage, DurableVectors):
        return
    stamp = stamp_of(embedder)
    stored = await storage.vectors_stamp()
    if stored == stamp:
        return
    fix = (
        "run `batchsvc reembed` (with the service stopped) to embed every memory again with "
        "the configured embedder, configure the embedder that made them, or use a new file"
    )
    if stored is not None and stored.startswith(UNFINISHED_REEMBED):
        raise VectorsMismatch(
            f"a `batchsvc reembed` to {stored.removeprefix(UNFINISHED_REEMBED)!r} stopped part "
            "way, and the stored vectors are of two models; run `batchsvc reembed` again"
        )
    sizes = await storage.vector_sizes()
    if stored is not None and sizes:
        raise VectorsMismatch(
            f"the stored vectors were made by {stored!r}, and the configured embedder is "
            f"{stamp!r}; {fix}"
        )
    if sizes - {embedder.dimensions}:
        raise VectorsMismatch(
            f"the store holds vectors of {', '.join(map(str, sorted(sizes)))} dimensions from "
            f"an embedder it did not record, and the configured embedder {stamp!r} makes "
            f"{embedder.dimensions}; {fix}"
        )
    # No vectors (whatever made the ones since deleted), or all of the embedder's size in a
    # file from before stamps, when the bundled embedders' sizes told them apart: take them
    # as the embedder's.
    await storage.set_vectors_stamp(stamp)


__all__ = ["VectorsMismatch", "check_vectors", "stamp_of"]
