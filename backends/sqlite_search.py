"""Lexical scores in SQL, for searches inside a transaction: they must see the transaction's
own uncommitted rows, which the in-memory indexes (`sqlite_indexes`) get only at its commit.
Every other search scores words from those indexes: the same scores, much faster.

Scores are exactly those of the in-memory backend (`batchsvc.lexical`): the same words, the
same formula and constants, and the same per-tenant statistics (N and the average length from
the `tenants` row, each word's document count and each memory's term counts from the FTS5
index through its fts5vocab tables), normalised by the query's ceiling so they lie in [0, 1].
FTS5's own `bm25()` was not used: its idf differs (it can go to zero for a word in most
memories) and it has no ceiling to normalise by, so a `threshold` would mean something else
on each backend, and hybrid fusion needs comparable scales.

The query text never reaches FTS5 as syntax: it is split by `tokenize` and each word is bound
as a parameter to a lookup of the fts5vocab `instance` table, which yields the candidates and
each word's count in them in one indexed query. No MATCH expression is built, so `NEAR(`, `*`,
`"` or `OR` in a query are only words, with nothing to escape.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from batchsvc.lexical import K1, B, idf, tokenize

from .sqlite_queries import kind_filters


def _marks(count: int) -> str:
    return ", ".join("?" * count)


async def _tenant_stats(conn: aiosqlite.Connection, tenant: str) -> tuple[int, int, int] | None:
    rows = list(
        await conn.execute_fetchall(
            "SELECT id, docs, tokens FROM tenants WHERE name = ?", (tenant,)
        )
    )
    return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None


async def _postings(
    conn: aiosqlite.Connection,
    tenant: str,
    terms: list[str],
    tags: tuple[str, ...],
    memory_type: str | None,
) -> list[Any]:
    """(id, length, term, tf) of every memory passing tags and type with a query term."""
    where, params = kind_filters(tags, memory_type)
    sql = (
        "SELECT m.id, m.length, p.term, count(*) "
        "FROM memories_fts_postings p JOIN memories m ON m.rowid = p.doc "
        f"WHERE p.term IN ({_marks(len(terms))}) AND m.tenant = ?{where} "
        # Each memory's terms in order: the sum is then the in-memory index's, bit for bit.
        "GROUP BY p.doc, p.term ORDER BY p.doc, p.term"
    )
    return list(await conn.execute_fetchall(sql, (*terms, tenant, *params)))


async def lexical_scores(
    conn: aiosqlite.Connection,
    tenant: str,
    text: str,
    tags: tuple[str, ...] = (),
    memory_type: str | None = None,
) -> dict[str, float]:
    """Normalised BM25 score (unrounded), by id, of every memory passing tags and type that
    shares a word with `text`: `batchsvc.lexical.LexicalIndex.scores` in SQL."""
    words = sorted(set(tokenize(text)))  # the order `LexicalIndex.score_rows` adds them in
    stats = await _tenant_stats(conn, tenant)
    if not words or stats is None or stats[1] == 0:
        return {}
    number, docs, tokens = stats
    terms = {f"{number}_{word}": word for word in words}
    found = await conn.execute_fetchall(
        f"SELECT term, doc FROM memories_fts_terms WHERE term IN ({_marks(len(terms))})",
        tuple(terms),
    )
    df = {term: int(count) for term, count in found}
    weights = {term: idf(docs, df.get(term, 0)) for term in terms}
    ceiling = sum(value * (K1 + 1) for value in weights.values())
    present = [term for term in terms if term in df]
    if ceiling <= 0 or not present:
        return {}
    average = tokens / docs or 1.0
    raw: dict[str, float] = {}
    for memory_id, length, term, tf in await _postings(conn, tenant, present, tags, memory_type):
        norm = K1 * (1 - B + B * length / average)
        raw[memory_id] = raw.get(memory_id, 0.0) + weights[term] * tf * (K1 + 1) / (tf + norm)
    return {memory_id: min(1.0, total / ceiling) for memory_id, total in raw.items()}
