"""Search ranking shared by backends that keep their indexes in memory: the candidates of each
mode in descending score, and the walk that applies threshold, filters and limit to them.

Modes, as `batchsvc.storage` defines them: `lexical` ranks memories that share a word with the
query by normalised BM25; `semantic` ranks every memory that has a vector by max(0, cosine);
`hybrid` ranks their union by `batchsvc.search.vectors.fuse`, where a memory without a vector
(stored while no embedder ran) counts as semantic score 0, and one with no shared word as lexical 0.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Protocol

import numpy as np
import numpy.typing as npt

from batchsvc.models import Memory, SearchHit, SearchQuery
from batchsvc.search.vectors import Scores, fuse_one
from batchsvc.storage import Vector

Ranked = Iterator[tuple[float, str]]


class LexicalScores(Protocol):
    """What ranking needs of a lexical index (`batchsvc.search.lexical.LexicalIndex` is one)."""

    def score_rows(self, query: str) -> tuple[Sequence[str | None], Scores]: ...

    def row(self, doc_id: str) -> int | None: ...


class VectorScores(Protocol):
    """What ranking needs of a vector index (`batchsvc.search.vectors.VectorIndex` is one)."""

    def scores(self, query: Vector) -> tuple[list[str | None], Scores]: ...

    def row(self, doc_id: str) -> int | None: ...


#: Candidates taken per side in a first round: a search usually ends within them.
FIRST_ROUND = 256


def ranked(query: SearchQuery, lexical: LexicalScores, vectors: VectorScores) -> Ranked:
    """(score, id) pairs of the query's candidates, best first. `vectors.scores` is called
    before this returns and `vectors.row` only after it, as a staged view may require."""
    if query.mode == "lexical":
        ids, scores = lexical.score_rows(query.text)
        return _by_array(ids, scores, floor_included=False)
    vector = _query_vector(query)
    ids, semantic = vectors.scores(vector)
    if query.mode == "semantic":
        return _by_array(ids, semantic, floor_included=True)
    words, lexical_scores = lexical.score_rows(query.text)
    return _fused(_Side(ids, semantic, vectors), _Side(words, lexical_scores, lexical))


def _query_vector(query: SearchQuery) -> Vector:
    if query.vector is None:
        raise ValueError(f"a {query.mode} search needs the query's vector")
    return query.vector


def _by_array(ids: Sequence[str | None], scores: Scores, *, floor_included: bool) -> Ranked:
    """Rows by descending score, down to 0 (included or not); rows of id None are skipped.

    The first FIRST_ROUND rows come from a partition and a sort of those alone; only a walk
    that goes past them (filters rejected most) pays for sorting the rest."""
    keep = scores >= 0 if floor_included else scores > 0
    if len(scores) > FIRST_ROUND:
        part = np.argpartition(-scores, FIRST_ROUND)
        edge = scores[part[FIRST_ROUND]]  # no row outside part[:FIRST_ROUND] scores above it
        top = part[:FIRST_ROUND]
        top = top[(scores[top] > edge) & keep[top]]
        yield from _pairs(ids, scores, top[np.argsort(-scores[top], kind="stable")])
        keep &= scores <= edge
    rest = np.flatnonzero(keep)
    yield from _pairs(ids, scores, rest[np.argsort(-scores[rest], kind="stable")])


def _pairs(ids: Sequence[str | None], scores: Scores, order: npt.NDArray[np.intp]) -> Ranked:
    for row in order.tolist():
        doc_id = ids[row]
        if doc_id is not None:
            yield float(scores[row]), doc_id


class _Side:
    """One side of a hybrid ranking: ids by row, their scores, and the index for lookups."""

    def __init__(
        self, ids: Sequence[str | None], scores: Scores, index: LexicalScores | VectorScores
    ) -> None:
        self.ids, self.scores, self._index = ids, scores, index
        #: Row by id of this side's scored rows, made only if a lookup by the index fails.
        self._scored: dict[str, int] | None = None

    def top(self, count: int) -> tuple[list[int], float]:
        """Rows of the `count` best scores, and the best score of any other row (-inf: none)."""
        size = len(self.scores)
        if count >= size:
            return list(range(size)), -math.inf
        part = np.argpartition(-self.scores, count)
        return part[:count].tolist(), float(self.scores[part[count]])

    def known(self, rows: list[int], keep: Callable[[float], bool]) -> dict[str, float]:
        """Score by id of these rows, for those `keep` accepts."""
        scores = self.scores[rows].tolist() if rows else []
        return {
            doc_id: score
            for row, score in zip(rows, scores, strict=True)
            if keep(score) and (doc_id := self.ids[row]) is not None
        }

    def score_of(self, doc_id: str) -> float:
        """The document's score on this side; 0 if it has none (no vector, no shared word)."""
        row = self._index.row(doc_id)
        if row is not None and row < len(self.scores) and self.ids[row] == doc_id:
            return max(0.0, float(self.scores[row]))
        # A write since `scores` was taken moved the document (a new row, a compaction, a
        # reused vector row): find its row among those scored here.
        if self._scored is None:
            self._scored = {
                scored_id: row
                for row in np.flatnonzero(self.scores > 0).tolist()
                if (scored_id := self.ids[row]) is not None
            }
        found = self._scored.get(doc_id)
        return 0.0 if found is None else float(self.scores[found])


def _fused(semantic: _Side, lexical: _Side) -> Ranked:
    """Hybrid candidates (every memory with a vector, and every one sharing a word) by
    `fuse_one`, exactly, without fusing all of them: a threshold algorithm (Fagin et al.).

    Each round takes the `count` best rows of each side and fuses those candidates. A memory
    outside both tops scores at most `fuse_one(best semantic left, best lexical left)`, so the
    candidates above that bound are final and come out in order; the rest wait for a round
    with `count` four times larger, the last of which covers everything."""
    given: set[str] = set()
    count = FIRST_ROUND
    while True:
        semantic_rows, semantic_left = semantic.top(count)
        lexical_rows, lexical_left = lexical.top(count)
        # Candidates: rows with a vector (free rows score -1), and rows sharing a word. A
        # candidate's score on the side that found it is at hand; only the other is looked up.
        semantic_known = semantic.known(semantic_rows, lambda score: score >= 0)
        lexical_known = lexical.known(lexical_rows, lambda score: score > 0)
        fused = sorted(
            (
                (
                    fuse_one(
                        semantic_known[doc_id]
                        if doc_id in semantic_known
                        else semantic.score_of(doc_id),
                        lexical_known[doc_id]
                        if doc_id in lexical_known
                        else lexical.score_of(doc_id),
                    ),
                    doc_id,
                )
                for doc_id in semantic_known.keys() | lexical_known.keys()
                if doc_id not in given
            ),
            reverse=True,
        )
        last = semantic_left == -math.inf and lexical_left == -math.inf
        bound = -math.inf if last else fuse_one(max(semantic_left, 0.0), max(lexical_left, 0.0))
        for score, doc_id in fused:
            if score <= bound:
                break
            given.add(doc_id)
            yield score, doc_id
        if last:
            return
        count *= 4


def _walk(query: SearchQuery, candidates: Ranked) -> Iterator[tuple[float, str]]:
    """Candidates with the score the client sees, until one falls below the threshold."""
    for raw, memory_id in candidates:
        # The threshold applies to the score the client sees, so round first.
        score = round(raw, 6)
        if score < query.threshold:
            return
        yield score, memory_id


def _full(query: SearchQuery, hits: list[SearchHit], score: float) -> bool:
    # Past the limit, keep walking only through ties with the last hit: which of the tied
    # memories are kept is decided by id below, not by the candidates' order.
    return len(hits) >= query.limit and score < hits[-1].score


def _best(query: SearchQuery, hits: list[SearchHit]) -> list[SearchHit]:
    hits.sort(key=lambda hit: (hit.score, hit.memory.id), reverse=True)
    return hits[: query.limit]


def select(
    query: SearchQuery, candidates: Ranked, accept: Callable[[str], Memory | None]
) -> list[SearchHit]:
    """The first `query.limit` candidates that `accept` returns a memory for (tags, type and
    filter are its job) and that score at least the threshold; ties newest first (by id)."""
    hits: list[SearchHit] = []
    for score, memory_id in _walk(query, candidates):
        if _full(query, hits, score):
            break
        memory = accept(memory_id)
        if memory is not None:
            hits.append(SearchHit(memory, score))
    return _best(query, hits)


async def select_fetching(
    query: SearchQuery,
    candidates: Ranked,
    fetch: Callable[[list[str]], Awaitable[Mapping[str, Memory]]],
    chunk: int = 64,
) -> list[SearchHit]:
    """`select` for a backend that reads memories with I/O: `fetch` gets the ids of up to
    `chunk` candidates at a time and returns those it accepts, by id. Same hits as `select`."""
    hits: list[SearchHit] = []
    walk = _walk(query, candidates)
    while batch := list(islice(walk, chunk)):
        accepted = await fetch([memory_id for _, memory_id in batch])
        for score, memory_id in batch:
            if _full(query, hits, score):
                return _best(query, hits)
            memory = accepted.get(memory_id)
            if memory is not None:
                hits.append(SearchHit(memory, score))
    return _best(query, hits)


__all__ = ["LexicalScores", "Ranked", "VectorScores", "ranked", "select", "select_fetching"]
