"""Lexical ranking: an in-memory BM25 index with scores normalised to [0, 1].

BM25 alone is unbounded, so each score is divided by the query's ceiling: the score a document
would get if every query term saturated (tf -> infinity), i.e. sum(idf * (k1 + 1)). That keeps
scores comparable across queries, which is what a `threshold` needs, and never above 1.

The index is laid out for scoring with NumPy, because a common word's postings reach tens of
thousands of documents at 100,000 memories and a Python loop over them cost ~0.4 s per query:
each document has a row; each term keeps the rows holding it, each followed by the term's
count in it, in one growable `array('i')`, scored as a NumPy view in a few vectorised steps.
Rows are never reused: a removed document's row is only marked dead (its postings stay until a
compaction renumbers the rows), so a row number always names one version of one document. A
term's document frequency is counted when a query asks for it, over its live rows, so that a
write touches one dictionary entry per term and a removal touches none.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

TOKEN = re.compile(r"\w+", re.UNICODE)
K1 = 1.2
B = 0.75
#: Compact once dead rows outnumber live ones (and at least this many are dead).
COMPACT_AFTER = 4096

Scores = npt.NDArray[np.float64]


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def idf(docs: int, df: int) -> float:
    """BM25's idf, always > 0, so every document holding a query term scores above 0."""
    return math.log(1 + (docs - df + 0.5) / (df + 0.5))


class LexicalIndex:
    """Postings per term, kept up to date on every write; search touches only matching rows."""

    def __init__(self) -> None:
        # term -> row, count, row, count, ... with rows ascending
        self._postings: dict[str, array[int]] = {}
        self._rows: dict[str, int] = {}  # live document id -> its row
        self._ids: list[str] = []  # row -> document id (dead rows keep theirs)
        self._lengths: array[float] = array("d")  # row -> words indexed
        self._alive = bytearray()  # row -> 1 while live
        self._total_length = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, doc_id: str, text: str) -> None:
        self.add_tokens(doc_id, tokenize(text))

    def add_tokens(self, doc_id: str, tokens: Iterable[str]) -> None:
        """Index (or re-index) the document as these words, already `tokenize`d."""
        self.remove(doc_id)
        # A plain dict loop: Counter's set-up costs more than the counting for short texts.
        counts: dict[str, int] = {}
        length = 0
        for term in tokens:
            counts[term] = counts.get(term, 0) + 1
            length += 1
        row = len(self._ids)
        postings = self._postings
        for term, tf in counts.items():
            pairs = postings.get(term)
            if pairs is None:
                postings[term] = array("i", (row, tf))
            else:
                pairs.append(row)
                pairs.append(tf)
        self._rows[doc_id] = row
        self._ids.append(doc_id)
        self._lengths.append(length)
        self._alive.append(1)
        self._total_length += length

    def remove(self, doc_id: str) -> None:
        row = self._rows.pop(doc_id, None)
        if row is None:
            return
        self._total_length -= self._lengths[row]
        # The row keeps its id: a search may hold this list and read ids of rows it scored
        # before the removal. `_alive` is what says the row is dead.
        self._alive[row] = 0
        dead = len(self._ids) - len(self._rows)
        if dead >= COMPACT_AFTER and dead > len(self._rows):
            self._compact()

    def _compact(self) -> None:
        """Renumber the live rows from 0 and drop dead rows from every posting list (and the
        terms left with none). New lists replace the old ones, so ids a search took from
        `score_rows` stay valid."""
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        renumbered = (np.cumsum(alive, dtype=np.int64) - 1).astype(np.int32)
        postings: dict[str, array[int]] = {}
        for term, pairs in self._postings.items():
            old = np.frombuffer(pairs, dtype=np.int32).reshape(-1, 2)
            kept = old[alive[old[:, 0]]]
            if len(kept):
                kept[:, 0] = renumbered[kept[:, 0]]
                fresh = array("i")
                fresh.frombytes(kept.tobytes())
                postings[term] = fresh
        self._postings = postings
        live = np.flatnonzero(alive).tolist()
        self._ids = [self._ids[row] for row in live]
        lengths = array("d")
        lengths.frombytes(np.frombuffer(self._lengths, dtype=np.float64)[alive].tobytes())
        self._lengths = lengths
        self._alive = bytearray(b"\x01" * len(live))
        self._rows = {doc_id: row for row, doc_id in enumerate(self._ids)}

    def row(self, doc_id: str) -> int | None:
        """The document's row in `score_rows`, or None if it is not indexed."""
        return self._rows.get(doc_id)

    @property
    def row_count(self) -> int:
        """Rows `score_rows` scores, dead ones included: an overlay's rows come after them."""
        return len(self._ids)

    def score_rows(self, query: str, overlay: Overlay | None = None) -> tuple[list[str], Scores]:
        """Ids by row and each row's normalised BM25 score: above 0 for every live document
        sharing a term with the query, 0 for the rest (dead rows included).

        With an `overlay`, the scores are those the index would give with the overlay's
        changes applied (its hidden documents removed, then its added ones indexed), without
        changing the index: a transaction's view of its own writes. Added documents get rows
        after the index's own, in the overlay's order.

        The id list is the index's own (do not change it) when there is no overlay. Later
        writes only append to it or compact into new lists: the rows scored here keep their
        ids, and no row is reused."""
        # Sorted: every path adds the terms in this order, so equal inputs give equal floats.
        terms = sorted(set(tokenize(query)))
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        lengths = np.frombuffer(self._lengths, dtype=np.float64)
        ids, live, total = self._ids, len(self._rows), self._total_length
        if overlay is not None and (overlay.hidden or overlay.added):
            hidden = [
                row for doc_id in overlay.hidden if (row := self._rows.get(doc_id)) is not None
            ]
            alive[hidden] = False
            added = overlay.added
            ids = [*self._ids, *(doc_id for doc_id, _ in added)]
            live += len(added) - len(hidden)
            total += sum(overlay.lengths) - float(lengths[hidden].sum())
            alive = np.concatenate([alive, np.ones(len(added), dtype=bool)])
            lengths = np.concatenate([lengths, np.asarray(overlay.lengths, dtype=np.float64)])
        scores: Scores = np.zeros(len(ids))
        if not terms or not live:
            return ids, scores
        # Each term's live rows and counts; their number is the term's document frequency.
        found: dict[str, tuple[npt.NDArray[np.int32], Scores]] = {}
        for term in terms:
            pairs_of = self._postings.get(term)
            pairs = np.frombuffer(pairs_of or b"", dtype=np.int32).reshape(-1, 2)
            if overlay is not None and term in overlay.postings:
                pairs = np.concatenate([pairs, overlay.postings[term]])
            if len(pairs):
                live_pairs = pairs[alive[pairs[:, 0]]]
                found[term] = live_pairs[:, 0], live_pairs[:, 1].astype(np.float64)
        weights = {term: idf(live, len(found[term][0]) if term in found else 0) for term in terms}
        ceiling = sum(weights[term] * (K1 + 1) for term in terms)
        average = total / live or 1.0
        for term, (rows, tf) in found.items():
            norm = K1 * (1 - B + B * lengths[rows] / average)
            # A row appears once per term, so this fancy-indexed add is exact.
            scores[rows] += weights[term] * tf * (K1 + 1) / (tf + norm)
        scores /= ceiling
        np.minimum(scores, 1.0, out=scores)
        return ids, scores

    def scores(self, query: str) -> dict[str, float]:
        """Normalised BM25 score of every document sharing a term with the query."""
        ids, scores = self.score_rows(query)
        return {ids[row]: float(scores[row]) for row in np.flatnonzero(scores > 0).tolist()}


class Overlay:
    """Changes to score on top of a `LexicalIndex` without applying them: documents `hidden`
    (removed, or replaced by a new version), and documents `added` as (id, words), whose rows
    follow the index's rows in this order. An overlay belongs to one index as it is: the
    index must not change while the overlay is used (a transaction holds the writer)."""

    def __init__(self, base_rows: int, hidden: Iterable[str], added: list[tuple[str, list[str]]]):
        self.hidden = frozenset(hidden)
        self.added = added
        self.lengths = [float(len(words)) for _, words in added]
        # term -> (row, count) pairs of the added documents, rows numbered after the index's.
        pairs: dict[str, list[tuple[int, int]]] = {}
        for k, (_, words) in enumerate(added):
            counts: dict[str, int] = {}
            for term in words:
                counts[term] = counts.get(term, 0) + 1
            for term, tf in counts.items():
                pairs.setdefault(term, []).append((base_rows + k, tf))
        self.postings = {
            term: np.asarray(rows, dtype=np.int32).reshape(-1, 2) for term, rows in pairs.items()
        }


__all__ = ["LexicalIndex", "Overlay", "Scores", "tokenize"]
