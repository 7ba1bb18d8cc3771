"""Lexical ranking: an in-memory BM25 index with scores normalised to [0, 1].

BM25 alone is unbounded, so each score is divided by the query's ceiling: the score a document
would get if every query term saturated (tf -> infinity), i.e. sum(idf * (k1 + 1)). That keeps
scores comparable across queries, which is what a `threshold` needs, and never above 1.
"""

from __future__ import annotations

import math
import re

TOKEN = re.compile(r"\w+", re.UNICODE)
K1 = 1.2
B = 0.75


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class LexicalIndex:
    """Postings per term, kept up to date on every write; search touches only matching docs."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, int]] = {}
        self._lengths: dict[str, int] = {}
        self._doc_terms: dict[str, tuple[str, ...]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        # A plain dict loop: Counter's set-up costs more than the counting for short texts.
        counts: dict[str, int] = {}
        tokens = tokenize(text)
        for term in tokens:
            counts[term] = counts.get(term, 0) + 1
        postings = self._postings
        for term, tf in counts.items():
            docs = postings.get(term)
            if docs is None:
                postings[term] = {doc_id: tf}
            else:
                docs[doc_id] = tf
        length = len(tokens)
        self._doc_terms[doc_id] = tuple(counts)
        self._lengths[doc_id] = length
        self._total_length += length

    def remove(self, doc_id: str) -> None:
        length = self._lengths.pop(doc_id, None)
        if length is None:
            return
        self._total_length -= length
        for term in self._doc_terms.pop(doc_id):
            docs = self._postings[term]
            del docs[doc_id]
            if not docs:
                del self._postings[term]

    def _idf(self, term: str) -> float:
        df = len(self._postings.get(term, ()))
        n = len(self._lengths)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> dict[str, float]:
        """Normalised BM25 score of every document sharing a term with the query."""
        terms = set(tokenize(query))
        if not terms or not self._lengths:
            return {}
        avg = self._total_length / len(self._lengths) or 1.0
        ceiling = sum(self._idf(t) * (K1 + 1) for t in terms)
        raw: dict[str, float] = {}
        for term in terms:
            docs = self._postings.get(term)
            if not docs:
                continue
            idf = self._idf(term)
            for doc_id, tf in docs.items():
                norm = K1 * (1 - B + B * self._lengths[doc_id] / avg)
                raw[doc_id] = raw.get(doc_id, 0.0) + idf * tf * (K1 + 1) / (tf + norm)
        if ceiling <= 0:
            return {}
        return {doc_id: min(1.0, score / ceiling) for doc_id, score in raw.items()}
