"""The SQLite backend's schema, and the steps that bring any older file up to it.

The version lives in `PRAGMA user_version` (0 for a file nobody has written). Each release that
changes the schema adds one step to `MIGRATIONS`; opening a file runs the steps it lacks, each
in its own transaction with the version bump, so a crash leaves the file at a whole version.
A file from a newer release is refused rather than guessed at.

Search indexes words, not text: `memories_fts` holds, per memory, the tokens of
`batchsvc.search.lexical.tokenize` (the same words the in-memory backend ranks), each prefixed with
the tenant's number (`17_walrus`). The prefix makes every FTS5 statistic per tenant, so a
tenant's scores never depend on (or reveal) another tenant's memories, and a MATCH can never
return a stranger's row. FTS5's `ascii` tokenizer with `_` as a token character splits that
text back into exactly those tokens: our tokens are lower-case `\\w+` runs, and it treats every
non-ASCII character, ASCII letters, digits and `_` as token characters.

SQLite 3.40 here has no `contentless_delete`, and a contentless table needs the exact indexed
text to delete a row, which re-tokenising cannot promise across Python (Unicode) upgrades; so
the FTS table keeps its own copy of the indexed words and rows are deleted by rowid.

Version 2 adds `memories.vector`: the memory's embedding as little-endian float32 bytes, or
NULL when it has none (stored while no embedder ran, or its text changed without a new one).
Memories of a version-1 file have none until their text is next written with an embedder.

Version 3 adds `settings`, a key-value table. Its one key so far, `embedder`, names the model
whose vectors the file holds (`batchsvc.storage.DurableVectors`): vectors of two models do not
compare, so the service refuses to start with another until `batchsvc reembed` has run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite

from batchsvc.errors import BackendError

SCHEMA_VERSION = 3

_V1 = (
    """
    CREATE TABLE tenants (
        id INTEGER PRIMARY KEY,        -- the prefix of this tenant's indexed words
        name TEXT NOT NULL UNIQUE,
        docs INTEGER NOT NULL DEFAULT 0,    -- memories: BM25's N
        tokens INTEGER NOT NULL DEFAULT 0   -- indexed words: BM25's average length
    )
    """,
    """
    CREATE TABLE memories (
        rowid INTEGER PRIMARY KEY,     -- also the memory's rowid in memories_fts
        tenant TEXT NOT NULL REFERENCES tenants (name),
        id TEXT NOT NULL,
        content TEXT NOT NULL,
        title TEXT,
        memory_type TEXT NOT NULL,
        metadata TEXT NOT NULL,        -- a JSON object
        tags TEXT NOT NULL,            -- a JSON array of strings
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        length INTEGER NOT NULL,       -- words indexed for title and content
        UNIQUE (tenant, id)            -- also the listing's index: tenant, then id order
    )
    """,
    """
    CREATE VIRTUAL TABLE memories_fts USING fts5 (words, tokenize = "ascii tokenchars '_'")
    """,
    # Documents per word (BM25's df) and each occurrence (its tf), read straight from the index.
    "CREATE VIRTUAL TABLE memories_fts_terms USING fts5vocab (memories_fts, row)",
    "CREATE VIRTUAL TABLE memories_fts_postings USING fts5vocab (memories_fts, instance)",
)


async def _create_v1(conn: aiosqlite.Connection) -> None:
    for statement in _V1:
        await conn.execute(statement)


async def _add_vectors_v2(conn: aiosqlite.Connection) -> None:
    await conn.execute("ALTER TABLE memories ADD COLUMN vector BLOB")


async def _add_settings_v3(conn: aiosqlite.Connection) -> None:
    await conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


#: The step that takes a file from version `n - 1` to `n`, keyed by `n`.
MIGRATIONS: dict[int, Callable[[aiosqlite.Connection], Awaitable[None]]] = {
    1: _create_v1,
    2: _add_vectors_v2,
    3: _add_settings_v3,
}


async def schema_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(conn: aiosqlite.Connection) -> None:
    """Bring the file up to SCHEMA_VERSION; `conn` must be in autocommit mode."""
    current = await schema_version(conn)
    if current > SCHEMA_VERSION:
        raise BackendError(
            f"the database has schema version {current}, newer than this release's "
            f"{SCHEMA_VERSION}; upgrade batchsvc to open it"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        # IMMEDIATE: two processes opening one old file cannot both run a step.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await schema_version(conn) < version:
                await MIGRATIONS[version](conn)
                # The version is in the file's header, written by this same transaction.
                await conn.execute(f"PRAGMA user_version = {version:d}")
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
