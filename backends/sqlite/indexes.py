"""Search indexes of the SQLite backend: stored in the file, ranked from memory.

Each memory's embedding is a column of its row (`memories.vector`, float32 bytes, NULL when it
has none) and its words are its FTS5 row, so both commit or roll back with the row. Ranking
uses, per tenant, a `VectorIndex` and a `LexicalIndex` (the in-memory backend's own classes,
so both backends rank alike by construction), built from the file on the tenant's first search
or transaction, and kept in step by the writes *after* they commit: a
rolled-back write never changes them. Scoring BM25 in memory is what makes a query of common
words fast at 100,000 memories: FTS5 cannot give our scores without visiting every row that
holds a query word, and doing so cost ~0.4 s per query.

A transaction stages its changes; its own searches see them on top of the committed indexes
through `StagedVectors` and `StagedWords`, with the same scores the indexes will give once it
commits, and as fast as any search (scoring its words in SQL instead cost ~0.2 s a query at
30,000 memories, all of it with the database's one writer held). The indexes get the changes
only when the transaction commits.

A load holds none of the backend's locks: at 100,000 memories it takes seconds, and while it
held the writer every tenant's writes waited for it. It reads the tenant's rows in one read
transaction on a connection of its own (a snapshot of the WAL file) and builds the indexes in
a worker thread, while writes go on. Every change committed for the tenant from the moment the
load begins, before its snapshot, is recorded for it (`IndexCache.commit`); the built indexes
replay them in commit order and are published in the same step of the event loop as the last
replayed change, so no commit falls between the snapshot and the indexes' first update: every
later commit updates them. A change already in the snapshot is replayed harmlessly: each sets
a memory's vector and words, or removes them, so it leaves what it had left (`IndexCache`).

One process owns a file's writes (as the writer lock already assumes); another process's
writes would not reach these indexes until a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

import aiosqlite
import numpy as np

from batchsvc.filters import matches
from batchsvc.models import Memory, SearchHit, SearchQuery
from batchsvc.search.lexical import LexicalIndex, Overlay
from batchsvc.search.ranking import LexicalScores, VectorScores, ranked, select_fetching
from batchsvc.search.vectors import Row, Scores, VectorIndex, refuse_other_sizes, row_cosines
from batchsvc.storage import ToCreate, Vector

from .queries import COLUMNS, NewRow, kind_filters, to_memory, words
from .support import run_to_end


class Change(NamedTuple):
    """One write's effect on its tenant's indexes."""

    memory_id: str
    #: The memory's vector now; None: it has none (or is gone).
    vector: Vector | Row | None
    #: The memory's words when the write gave it new text, as `sqlite_queries.words` gives
    #: them; None: its words did not change (or it is gone).
    words: tuple[str, ...] | None
    gone: bool = False


def written(memory: Memory, vector: Vector | None, text_changed: bool = True) -> Change:
    """The change of a write that stored `memory` with `vector` (its text new or changed,
    unless `text_changed` is False: then only its vector changed)."""
    return Change(memory.id, vector, tuple(words(memory)) if text_changed else None)


class Created(NamedTuple):
    """New memories as one write stores them: their rows for `sqlite_queries.insert_many`,
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


#: Opens a connection of its own for one load, and closes it after.
Connect = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]
#: At most this many changes committed during a load are applied on the event loop, when the
#: load publishes; more are applied first in a worker thread, a round at a time.
REPLAY_ON_LOOP = 256
#: Rounds in the worker thread before the rest is applied on the loop whatever its size: the
#: writes committed during a round are far fewer than those the round applies.
REPLAY_ROUNDS = 4


class _Load:
    """One load under way: every change committed for its tenant since it began."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.task: asyncio.Task[None] | None = None


class IndexCache:
    """Each tenant's indexes, once loaded; each load in flight and the changes it must replay.

    A load holds none of the store's locks: it reads the file on a connection of its own, in
    one snapshot, while writes go on. So that no commit is lost between its snapshot and its
    publication, the load is registered (and `commit` records every change of its tenant for
    it) *before* its snapshot is taken; once built, the indexes replay those changes in commit
    order, then are published, in one step of the event loop after the last replayed change.
    Changes committed before the snapshot are replayed too: harmless, as each sets a memory's
    vector and words (or removes them), so replaying it leaves what it had left.
    """

    def __init__(self) -> None:
        self._indexes: dict[str, Indexes] = {}
        self._loads: dict[str, _Load] = {}
        #: Every load's task until it ends, those `clear` dropped included: `close` waits.
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, tenant: str) -> Indexes | None:
        return self._indexes.get(tenant)

    async def load(self, tenant: str, conn: aiosqlite.Connection) -> Indexes:
        """The tenant's indexes read afresh from `conn`, not yet published."""
        return await read(conn, tenant)

    async def loaded(self, tenant: str, connect: Connect) -> Indexes:
        """The tenant's indexes, loaded first if need be; a load already under way is joined.

        A load runs to its end even if its callers are cancelled (a search's time-out): at
        100,000 memories it takes seconds, and one abandoned each time would never finish for
        a tenant whose load outlasts the time-out. A cancelled caller still waits for it."""
        while (indexes := self._indexes.get(tenant)) is None:
            load = self._loads.get(tenant)
            if load is None:
                # Registered now, before the load's task takes its snapshot: from here on
                # every commit of the tenant is recorded for it.
                load = self._loads[tenant] = _Load()
                load.task = asyncio.create_task(self._load(tenant, load, connect))
                self._tasks.add(load.task)
                load.task.add_done_callback(self._tasks.discard)
            assert load.task is not None
            _, cancelled = await run_to_end(load.task)
            if cancelled:
                raise asyncio.CancelledError
            # Published, or not: cleared meanwhile, or its replay failed. Then load again.
        return indexes

    async def _load(self, tenant: str, load: _Load, connect: Connect) -> None:
        try:
            async with connect() as conn:
                indexes = await self.load(tenant, conn)
            await self._replay(tenant, load, indexes)
        finally:
            if self._loads.get(tenant) is load:
                del self._loads[tenant]

    async def _replay(self, tenant: str, load: _Load, indexes: Indexes) -> None:
        """Apply the changes committed during the load, then publish the indexes, unless
        `clear` dropped the load meanwhile (its snapshot may predate what cleared it)."""
        done = 0
        try:
            for _ in range(REPLAY_ROUNDS):
                if self._loads.get(tenant) is not load:
                    return
                if len(load.changes) - done <= REPLAY_ON_LOOP:
                    break
                # Unpublished, these indexes are this task's alone: a worker thread may apply
                # a copy of the changes so far while commits append more to the list.
                changes = load.changes[done:]
                await asyncio.to_thread(indexes.apply, changes)
                done += len(changes)
            if self._loads.get(tenant) is not load:
                return
            # The rest, and the publication, without a pause: no commit can slip in between.
            indexes.apply(load.changes[done:])
        except Exception:
            # Only vectors of several lengths in the file can make a replay fail (see
            # `_vector_index`); the file has the truth, and `loaded` reads it again.
            return
        self._indexes[tenant] = indexes

    def commit(self, tenant: str, changes: Iterable[Change]) -> None:
        """Committed changes reach loaded indexes, and loads under way; unloaded indexes will
        read them from the file."""
        indexes = self._indexes.get(tenant)
        if indexes is not None:
            indexes.apply(changes)
        elif (load := self._loads.get(tenant)) is not None:
            load.changes.extend(changes)

    def clear(self) -> None:
        """Forget every tenant's indexes, and the loads under way: they may have read the file
        before whatever made the caller clear them, so they publish nothing (their callers
        load again)."""
        self._indexes.clear()
        self._loads.clear()

    async def close(self) -> None:
        """Wait for the loads under way (they use connections of their own), then clear."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        self.clear()


class StagedVectors:
    """A transaction's view: the committed index with its own staged changes on top."""

    def __init__(self, base: VectorIndex, staged: Mapping[str, Vector | Row | None]) -> None:
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
        matrix = np.asarray([v for _, v in added], dtype=np.float32)
        cosines = row_cosines(matrix, query)  # as the index will score them, to the bit
        self._rows = {memory_id: len(ids) + k for k, (memory_id, _) in enumerate(added)}
        ids.extend(memory_id for memory_id, _ in added)
        extra: Scores = np.clip(cosines.astype(np.float64), 0.0, 1.0)
        return ids, np.concatenate([scores, extra])

    def row(self, doc_id: str) -> int | None:
        if doc_id in self._staged:
            return self._rows.get(doc_id)
        return self._base.row(doc_id)


class StagedWords:
    """A transaction's view of the words: the committed index with its own staged changes on
    top (`batchsvc.search.lexical.Overlay`), scored as the index will score them after the
    commit."""

    def __init__(self, base: LexicalIndex, staged: Iterable[Change]) -> None:
        hidden: set[str] = set()
        added: dict[str, list[str]] = {}
        for change in staged:
            if change.gone or change.words is not None:
                # Gone, or new words: its committed version no longer counts.
                hidden.add(change.memory_id)
                added.pop(change.memory_id, None)
                if not change.gone:
                    added[change.memory_id] = list(change.words or ())
            # words None and not gone: a change that left the words as they were.
        self._base = base
        self._overlay = Overlay(base.row_count, hidden, list(added.items()))
        self._rows = {memory_id: base.row_count + k for k, memory_id in enumerate(added)}

    def score_rows(self, query: str) -> tuple[list[str], Scores]:
        return self._base.score_rows(query, self._overlay)

    def row(self, doc_id: str) -> int | None:
        if doc_id in self._rows:
            return self._rows[doc_id]
        return None if doc_id in self._overlay.hidden else self._base.row(doc_id)


async def indexed_search(
    conn: aiosqlite.Connection,
    tenant: str,
    query: SearchQuery,
    vectors: VectorScores,
    words: LexicalScores,
) -> list[SearchHit]:
    """A search in any mode, ranked exactly as the in-memory backend ranks it."""
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

    return await select_fetching(query, ranked(query, words, vectors), fetch)
