"""Ranking at a size where the partial rounds matter: every mode's candidate stream, walked to
its end, equals a brute-force ranking of every memory, and compaction changes no score."""

from __future__ import annotations

import random

import numpy as np
import pytest

from batchsvc.models import SearchMode, SearchQuery
from batchsvc.search import lexical as lexical_module
from batchsvc.search.lexical import LexicalIndex
from batchsvc.search.ranking import FIRST_ROUND, ranked
from batchsvc.search.vectors import VectorIndex, fuse_one
from tests.helpers.search import MODES

WORDS = [f"w{n}" for n in range(60)]
DIMS = 8


def _corpus(seed: int, size: int) -> tuple[LexicalIndex, VectorIndex, dict[str, str]]:
    rng = random.Random(seed)
    lexical, vectors, texts = LexicalIndex(), VectorIndex(), {}
    for n in range(size):
        doc_id = f"m{n:05d}"
        # Skewed words: w0 is in most memories, w59 in few.
        text = " ".join(rng.choices(WORDS, weights=[1 / (k + 1) for k in range(60)], k=8))
        texts[doc_id] = text
        lexical.add(doc_id, text)
        if n % 10:  # every tenth memory has no vector, as if stored while no embedder ran
            vector = np.array([rng.gauss(0, 1) for _ in range(DIMS)])
            vectors.add(doc_id, tuple((vector / np.linalg.norm(vector)).tolist()))
    for n in range(0, size, 7):  # deletes leave free vector rows and dead lexical rows
        doc_id = f"m{n:05d}"
        lexical.remove(doc_id)
        vectors.remove(doc_id)
        del texts[doc_id]
    return lexical, vectors, texts


def _query(mode: SearchMode, text: str, seed: int) -> SearchQuery:
    rng = random.Random(seed)
    vector = np.array([rng.gauss(0, 1) for _ in range(DIMS)])
    return SearchQuery(
        text=text, mode=mode, limit=10, vector=tuple((vector / np.linalg.norm(vector)).tolist())
    )


def _reference(query: SearchQuery, lexical: LexicalIndex, vectors: VectorIndex) -> dict[str, float]:
    """Every candidate's score, computed one memory at a time."""
    words = lexical.scores(query.text)
    assert query.vector is not None
    ids, semantic = vectors.scores(query.vector)
    by_vector = {doc_id: float(semantic[row]) for row, doc_id in enumerate(ids) if doc_id}
    if query.mode == "lexical":
        return words
    if query.mode == "semantic":
        return by_vector
    return {
        doc_id: fuse_one(by_vector.get(doc_id, 0.0), words.get(doc_id, 0.0))
        for doc_id in by_vector.keys() | words.keys()
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", ["w0", "w0 w1 w2", "w58 w0", "w59", "nothing"])
def test_the_whole_stream_is_every_candidate_in_score_order(mode: SearchMode, text: str) -> None:
    lexical, vectors, _ = _corpus(seed=3, size=3000)
    query = _query(mode, text, seed=len(text))
    stream = list(ranked(query, lexical, vectors))
    expected = _reference(query, lexical, vectors)
    assert len(stream) > FIRST_ROUND or len(expected) <= FIRST_ROUND
    assert len({doc_id for _, doc_id in stream}) == len(stream)  # no memory twice
    assert {doc_id for _, doc_id in stream} == set(expected)
    assert all(score == pytest.approx(expected[doc_id], abs=1e-12) for score, doc_id in stream)
    scores = [score for score, _ in stream]
    assert scores == sorted(scores, reverse=True)


def test_a_stream_taken_while_the_index_changes_never_names_a_removed_memory() -> None:
    lexical, vectors, texts = _corpus(seed=5, size=2000)
    query = _query("hybrid", "w0 w1", seed=1)
    stream = ranked(query, lexical, vectors)
    first = [next(stream) for _ in range(5)]
    gone = [doc_id for doc_id in list(texts)[:500] if doc_id not in dict(first).values()]
    for doc_id in gone:
        lexical.remove(doc_id)
        vectors.remove(doc_id)
    rest = list(stream)
    # The walk ends without error and names no memory twice. (A removed memory may still
    # come from the semantic side's copy of the ids; the backend's fetch then finds nothing.)
    names = [doc_id for _, doc_id in first + rest]
    assert len(names) == len(set(names))
    assert len(names) > FIRST_ROUND


def test_compaction_keeps_every_score(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical_module, "COMPACT_AFTER", 50)
    lexical, _, texts = _corpus(seed=9, size=400)
    before = {q: lexical.scores(q) for q in ("w0", "w3 w7", "w59 w1")}
    rows_before = len(lexical._ids)
    for doc_id in list(texts)[:300]:
        lexical.remove(doc_id)
        del texts[doc_id]
    assert len(lexical._ids) < rows_before  # compacted: dead rows are gone
    fresh = LexicalIndex()
    for doc_id, text in texts.items():
        fresh.add(doc_id, text)
    for query in before:
        got, want = lexical.scores(query), fresh.scores(query)
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-12 for k in got)
    lexical.add("later", "w0 w59")  # the compacted index takes writes again
    assert "later" in lexical.scores("w59")


def test_a_compaction_between_rounds_changes_no_score(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes to other memories while a hybrid stream is walked (the SQLite backend awaits
    between fetches) may compact the lexical index: the stream's scores stay those it began
    with, for every memory nobody wrote."""
    monkeypatch.setattr(lexical_module, "COMPACT_AFTER", 100)
    lexical, vectors, _ = _corpus(seed=11, size=3000)
    query = _query("hybrid", "w0 w1 w2", seed=4)
    expected = dict((doc_id, score) for score, doc_id in ranked(query, lexical, vectors))
    stream = ranked(query, lexical, vectors)
    got = [next(stream)]
    rows_before = len(lexical._ids)
    for n in range(3000):  # churn on other memories: enough dead rows to compact
        lexical.add(f"junk{n}", "w0 junk")
        lexical.remove(f"junk{n}")
    assert len(lexical._ids) < rows_before + 3000  # it did compact
    got += list(stream)
    assert {doc_id for _, doc_id in got} == set(expected)
    assert all(score == expected[doc_id] for score, doc_id in got)
    scores = [score for score, _ in got]
    assert scores == sorted(scores, reverse=True)
