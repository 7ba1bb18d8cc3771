"""Vectors of the SQLite backend: stored in the file, ranked from a NumPy index in memory.

Each memory's embedding is a column of its row (`memories.vector`, float32 bytes, NULL when it
has none), so it commits or rolls back with the row. Ranking uses a `VectorIndex` per tenant,
built from the file on the tenant's first semantic or hybrid search, or first write with a
vector, and kept in step by the writes *after* they commit: a rolled-back write never changes
it. A transaction stages its changes; its own searches see them through `StagedVectors`, and
the index gets them only when the transaction commits.

The index is built while the backend's write lock is held, so no commit can land between the
read of the file and the index's first use: every later commit updates it. One process owns
a file's writes (as the writer lock already assumes); another process's writes would not reach
this index until a restart.

Semantic and hybrid search run through `batchsvc.ranking`, the in-memory backend's own path;
only the lexical scores (`sqlite_search.lexical_scores`) and the reading of the memories
(tags and type in SQL, metadata filters with `batchsvc.filters.matches`) are SQLite's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiosqlite
import numpy as np

from batchsvc.filters import matches
from batchsvc.models import Memory, SearchHit, SearchQuery
from batchsvc.ranking import VectorScores, ranked, select_fetching
from batchsvc.storage import Vector
from batchsvc.vectors import Scores, VectorIndex

from .sqlite_queries import COLUMNS, kind_filters, to_memory
from .sqlite_search import lexical_scores

#: One write's effect on its tenant's vectors: the memory's id and its vector now (None: none).
Change = tuple[str, Vector | None]
_FLOAT32 = np.dtype("<f4")


def encode(vector: Vector | None) -> bytes | None:
    """The column's value: little-endian float32 bytes, or NULL."""
    return None if vector is None else np.asarray(vector, dtype=_FLOAT32).tobytes()


async def load(conn: aiosqlite.Connection, tenant: str) -> VectorIndex:
    """The tenant's vectors as an index. Vectors of another length than the newest memory's
    (written under an embedder configured differently) are left out: a query of today's
    embedder cannot be compared with them."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT id, vector FROM memories WHERE tenant = ? AND vector IS NOT NULL ORDER BY id",
            (tenant,),
        )
    )
    size = len(rows[-1][1]) if rows else 0
    kept = [(str(memory_id), blob) for memory_id, blob in rows if len(blob) == size]
    if size == 0 or not kept:
        return VectorIndex()
    matrix = np.frombuffer(b"".join(blob for _, blob in kept), dtype=_FLOAT32)
    return VectorIndex.from_rows(
        [memory_id for memory_id, _ in kept], matrix.reshape(len(kept), -1).astype(np.float32)
    )


def apply(index: VectorIndex, changes: Iterable[Change]) -> None:
    for memory_id, vector in changes:
        if vector is None:
            index.remove(memory_id)
        else:
            index.add(memory_id, vector)


def check(index: VectorIndex, staged: Mapping[str, Vector | None], vector: Vector) -> None:
    """Refuse, before anything is written, a vector the index could not take."""
    expected = index.dimensions
    if expected is None:
        expected = next((len(v) for v in staged.values() if v is not None), None)
    if expected is not None and len(vector) != expected:
        raise ValueError(f"a vector of {len(vector)} dimensions in an index of {expected}")


class VectorCache:
    """Each tenant's index, once loaded; the backend holds its write lock to load one."""

    def __init__(self) -> None:
        self._indexes: dict[str, VectorIndex] = {}

    def get(self, tenant: str) -> VectorIndex | None:
        return self._indexes.get(tenant)

    async def load(self, tenant: str, conn: aiosqlite.Connection) -> VectorIndex:
        index = self._indexes.get(tenant)
        if index is None:
            index = self._indexes[tenant] = await load(conn, tenant)
        return index

    def commit(self, tenant: str, changes: Iterable[Change]) -> None:
        """Committed changes reach a loaded index; an unloaded one will read them from the file."""
        index = self._indexes.get(tenant)
        if index is not None:
            apply(index, changes)

    def clear(self) -> None:
        self._indexes.clear()


class StagedVectors:
    """A transaction's view: the committed index with its own staged changes on top."""

    def __init__(self, base: VectorIndex, staged: Mapping[str, Vector | None]) -> None:
        self._base = base
        self._staged = dict(staged)
        self._rows: dict[str, int] = {}

    def scores(self, query: Vector) -> tuple[list[str | None], Scores]:
        base_ids, base_scores = self._base.scores(query)
        ids, scores = list(base_ids), base_scores.copy()
        for memory_id in self._staged:
            row = self._base.row(memory_id)
            if row is not None:
                scores[row] = -1.0  # replaced or gone: ranked below, or not at all
        added = [(memory_id, v) for memory_id, v in self._staged.items() if v is not None]
        if not added:
            return ids, scores
        q = np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        matrix = np.asarray([v for _, v in added], dtype=np.float32)
        cosines = matrix @ (q / norm if norm > 0 else q)
        self._rows = {memory_id: len(ids) + k for k, (memory_id, _) in enumerate(added)}
        ids.extend(memory_id for memory_id, _ in added)
        extra: Scores = np.clip(cosines.astype(np.float64), 0.0, 1.0)
        return ids, np.concatenate([scores, extra])

    def row(self, doc_id: str) -> int | None:
        if doc_id in self._staged:
            return self._rows.get(doc_id)
        return self._base.row(doc_id)


class _Fixed:
    """Lexical scores computed beforehand, in the shape `batchsvc.ranking` reads."""

    def __init__(self, scores: dict[str, float]) -> None:
        self._ids: list[str | None] = list(scores)
        self._scores: Scores = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        self._rows = {memory_id: row for row, memory_id in enumerate(scores)}

    def score_rows(self, query: str) -> tuple[list[str | None], Scores]:
        return self._ids, self._scores

    def row(self, doc_id: str) -> int | None:
        return self._rows.get(doc_id)


async def vector_search(
    conn: aiosqlite.Connection, tenant: str, query: SearchQuery, vectors: VectorScores
) -> list[SearchHit]:
    """A semantic or hybrid search, ranked exactly as the in-memory backend ranks it."""
    lexical: dict[str, float] = {}
    if query.mode == "hybrid":
        found = await lexical_scores(conn, tenant, query.text, query.tags, query.memory_type)
        lexical = {memory_id: score for score, memory_id in found.values()}
    where, params = kind_filters(query.tags, query.memory_type)

    async def fetch(ids: list[str]) -> dict[str, Memory]:
        rows = await conn.execute_fetchall(
            f"SELECT {COLUMNS} FROM memories m "
            f"WHERE m.tenant = ? AND m.id IN ({', '.join('?' * len(ids))}){where}",
            (tenant, *ids, *params),
        )
        memories = (to_memory(row) for row in rows)
        return {
            memory.id: memory
            for memory in memories
            if query.filter is None or matches(query.filter, memory.metadata)
        }

    return await select_fetching(query, ranked(query, _Fixed(lexical), vectors), fetch)
