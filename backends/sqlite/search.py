"""Searches of the SQLite backend: ranked from the in-memory indexes, rows fetched from the
file.

A transaction stages its changes; its own searches see them on top of the committed indexes
through `StagedVectors` and `StagedWords`, with the same scores the indexes will give once it
commits, and as fast as any search (scoring its words in SQL instead cost ~0.2 s a query at
30,000 memories, all of it with the database's one writer held). The indexes get the changes
only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiosqlite
import numpy as np

from batchsvc.filters import matches
from batchsvc.models import Memory, SearchHit, SearchQuery
from batchsvc.search.lexical import LexicalIndex, Overlay
from batchsvc.search.ranking import LexicalScores, VectorScores, ranked, select_fetching
from batchsvc.search.vectors import Row, Scores, VectorIndex, row_cosines
from batchsvc.storage import Vector

from .indexes import Change
from .queries import COLUMNS, kind_filters, to_memory


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
