"""Search indexes of the SQLite backend: stored in the file, ranked from memory.

Each memory's embedding is a column of its row (`memories.vector`, float32 bytes, NULL when it
has none) and its words are its FTS5 row, so both commit or roll back with the row. Ranking
uses, per tenant, a `VectorIndex` and a `LexicalIndex` (the in-memory backend's own classes,
so both backends rank alike by construction), built from the file on the tenant's first search
or transaction, and kept in step by the writes *after* they commit: a
rolled-back write never changes them. Scoring BM25 in memory is what makes a query of common
words fast at 100,000 memories: FTS5 cannot give our scores without visiting every row that
holds a query word, and doing so cost ~0.4 s per query.

One process owns a file's writes (as the writer lock already assumes); another process's
writes would not reach these indexes until a restart.


The indexes are loaded and kept per tenant by `index_cache`, and a transaction's searches see
its staged changes through `search`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import aiosqlite
import numpy as np

from batchsvc.models import Memory
from batchsvc.search.lexical import LexicalIndex
from batchsvc.search.vectors import Row, VectorIndex, refuse_other_sizes
from batchsvc.storage import ToCreate, Vector

from .queries import NewRow, words
from .support import run_to_end


class Change(NamedTuple):
    """One write's effect on its tenant's indexes."""

    memory_id: str
    #: The memory's vector now; None: it has none (or is gone).
    vector: Vector | Row | None
    #: The memory's words when the write gave it new text, as `queries.words` gives
    #: them; None: its words did not change (or it is gone).
    words: tuple[str, ...] | None
    gone: bool = False


def written(memory: Memory, vector: Vector | None, text_changed: bool = True) -> Change:
    """The change of a write that stored `memory` with `vector` (its text new or changed,
    unless `text_changed` is False: then only its vector changed)."""
    return Change(memory.id, vector, tuple(words(memory)) if text_changed else None)


class Created(NamedTuple):
    """New memories as one write stores them: their rows for `queries.insert_many`,
    and their changes to the indexes (the words made once, for both)."""

    rows: list[NewRow]
    changes: list[Change]


def created(tenant: str, items: Iterable[ToCreate]) -> Created:
    items = list(items)
    rows: list[NewRow] = []
    changes: list[Change] = []
    vectors = iter(_float32([v for _, v in items if v is not None]))
    for memory, given in items:
        tokens = tuple(words(memory))
        # Converted once: the row's bytes and the in-memory index both read the float32 copy.
        vector = None if given is None else next(vectors)
        rows.append((tenant, memory, encode(vector), tokens))
        changes.append(Change(memory.id, vector, tokens))
    return Created(rows, changes)


def _float32(vectors: list[Vector]) -> list[Row]:
    if not vectors:
        return []
    try:
        return list(np.asarray(vectors, dtype=_FLOAT32).reshape(len(vectors), -1))
    except ValueError:  # of several lengths: each alone, for `check` to refuse by name
        return [np.asarray(vector, dtype=_FLOAT32) for vector in vectors]


def deleted(memory_id: str) -> Change:
    return Change(memory_id, None, None, gone=True)


def vectors_of(changes: Iterable[Change]) -> dict[str, Vector | Row | None]:
    """Each changed memory's vector now, the last change winning."""
    return {change.memory_id: change.vector for change in changes}


_FLOAT32 = np.dtype("<f4")


def encode(vector: Vector | Row | None) -> bytes | None:
    """The column's value: little-endian float32 bytes, or NULL."""
    return None if vector is None else np.asarray(vector, dtype=_FLOAT32).tobytes()


async def stored_size(conn: aiosqlite.Connection, tenant: str) -> int | None:
    """The length of the vectors a load of the tenant would index (its newest memory's with a
    vector), as `conn` sees the file; None: it has none. Found through the (tenant, id) index,
    reading one row's header when recent memories have vectors."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT length(vector) FROM memories WHERE tenant = ? AND vector IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (tenant,),
        )
    )
    return int(rows[0][0]) // _FLOAT32.itemsize if rows else None


async def read(conn: aiosqlite.Connection, tenant: str) -> Indexes:
    """The tenant's indexes as the file holds them, read in one snapshot (one read
    transaction) and built in a worker thread (seconds at 100,000 memories), so the event loop
    keeps serving meanwhile."""
    await conn.execute("BEGIN")
    try:
        vectors = list(
            await conn.execute_fetchall(
                "SELECT id, vector FROM memories "
                "WHERE tenant = ? AND vector IS NOT NULL ORDER BY id",
                (tenant,),
            )
        )
        found = list(
            await conn.execute_fetchall("SELECT id FROM tenants WHERE name = ?", (tenant,))
        )
        texts = []
        if found:
            texts = list(
                await conn.execute_fetchall(
                    "SELECT m.id, f.words FROM memories m "
                    "JOIN memories_fts f ON f.rowid = m.rowid WHERE m.tenant = ? ORDER BY m.id",
                    (tenant,),
                )
            )
    finally:
        await run_to_end(conn.rollback())
    skip = len(f"{found[0][0]}_") if found else 0
    return await asyncio.to_thread(_build, vectors, texts, skip)


def _build(vectors: list[Any], texts: list[Any], skip: int) -> Indexes:
    # Fresh indexes nobody else sees until they are returned: safe to build in another thread.
    return Indexes(_vector_index(vectors), _words_index(texts, skip))


def _vector_index(rows: list[Any]) -> VectorIndex:
    """Vectors of another length than the newest memory's (written under an embedder
    configured differently) are left out: a query of today's embedder cannot be compared with
    them."""
    size = len(rows[-1][1]) if rows else 0
    kept = [(str(memory_id), blob) for memory_id, blob in rows if len(blob) == size]
    if size == 0 or not kept:
        return VectorIndex()
    matrix = np.frombuffer(b"".join(blob for _, blob in kept), dtype=_FLOAT32)
    # `from_rows` copies into a native float32 matrix of its own: no copy needed here.
    return VectorIndex.from_rows(
        [memory_id for memory_id, _ in kept], matrix.reshape(len(kept), -1)
    )


def _words_index(rows: Iterable[Any], skip: int) -> LexicalIndex:
    """Each memory's FTS5 row, its tenant prefix taken off."""
    index = LexicalIndex()
    for memory_id, text in rows:
        index.add_tokens(str(memory_id), [token[skip:] for token in text.split()])
    return index


class Indexes:
    """One tenant's search indexes."""

    def __init__(self, vectors: VectorIndex, words: LexicalIndex) -> None:
        self.vectors = vectors
        self.words = words

    def apply(self, changes: Iterable[Change]) -> None:
        for memory_id, vector, tokens, gone in changes:
            if vector is None:
                self.vectors.remove(memory_id)
            else:
                self.vectors.add(memory_id, vector)
            if gone:
                self.words.remove(memory_id)
            elif tokens is not None:
                self.words.add_tokens(memory_id, tokens)


def check(
    expected: int | None,
    staged: Mapping[str, Vector | Row | None],
    vectors: Iterable[Vector | Row],
) -> None:
    """Refuse, before anything is written, vectors the index could not take: it holds vectors
    of `expected` dimensions (None: none yet, so the first staged vector's length rules)."""
    if expected is None:
        expected = next((len(v) for v in staged.values() if v is not None), None)
    refuse_other_sizes(expected, vectors)
