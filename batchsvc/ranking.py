"""Search ranking shared by backends that keep their indexes in memory: the candidates of each
mode in descending score, and the walk that applies threshold, filters and limit to them.

Modes, as `batchsvc.storage` defines them: `lexical` ranks memories that share a word with the
query by normalised BM25; `semantic` ranks every memory that has a vector by max(0, cosine);
`hybrid` ranks their union by `batchsvc.vectors.fuse`, where a memory without a vector (stored
while no embedder ran) counts as semantic score 0, and one with no shared word as lexical 0.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Protocol

import numpy as np

from batchsvc.models import Memory, SearchHit, SearchQuery
from batchsvc.storage import Vector
from batchsvc.vectors import Scores, fuse, fuse_one

Ranked = Iterator[tuple[float, str]]


class LexicalScores(Protocol):
    """What ranking needs of a lexical index (`batchsvc.lexical.LexicalIndex` is one)."""

    def scores(self, query: str) -> Mapping[str, float]: ...


class VectorScores(Protocol):
    """What ranking needs of a vector index (`batchsvc.vectors.VectorIndex` is one)."""

    def scores(self, query: Vector) -> tuple[list[str | None], Scores]: ...

    def row(self, doc_id: str) -> int | None: ...


def ranked(query: SearchQuery, lexical: LexicalScores, vectors: VectorScores) -> Ranked:
    """(score, id) pairs of the query's candidates, best first. `vectors.scores` is called
    before this returns and `vectors.row` only after it, as a staged view may require."""
    if query.mode == "lexical":
        return _by_score(lexical.scores(query.text).items())
    vector = _query_vector(query)
    ids, semantic = vectors.scores(vector)
    if query.mode == "semantic":
        return _by_array(ids, semantic)
    fused = fuse(semantic, 0.0)
    without_vector: list[tuple[str, float]] = []
    for memory_id, score in lexical.scores(query.text).items():
        row = vectors.row(memory_id)
        if row is None:
            without_vector.append((memory_id, fuse_one(0.0, score)))
        else:
            fused[row] = fuse_one(float(semantic[row]), score)
    fused[semantic < 0] = -1.0  # free rows stay out
    return heapq.merge(
        _by_array(ids, fused), _by_score(without_vector), key=lambda pair: pair[0], reverse=True
    )


def _query_vector(query: SearchQuery) -> Vector:
    if query.vector is None:
        raise ValueError(f"a {query.mode} search needs the query's vector")
    return query.vector


def _by_score(scores: Iterable[tuple[str, float]]) -> Ranked:
    return iter(sorted(((score, doc_id) for doc_id, score in scores), reverse=True))


def _by_array(ids: list[str | None], scores: Scores) -> Ranked:
    # A stable sort of the negated scores: a full sort of 100,000 floats is a few ms, and the
    # walk below usually stops after `limit` rows.
    for row in np.argsort(-scores, kind="stable").tolist():
        score = float(scores[row])
        doc_id = ids[row]
        if score < 0 or doc_id is None:
            return
        yield score, doc_id


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


__all__ = ["LexicalScores", "VectorScores", "ranked", "select", "select_fetching"]
