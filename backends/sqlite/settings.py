"""The SQLite backend's settings (schema version 3): the stamp of the model whose vectors the file
holds, and the re-embedding that replaces them all (`batchsvc.storage.DurableVectors`).

Each function takes the connection and the transaction its caller chose, like
`queries`; `SQLiteStore` holds the writer for them.
"""

from __future__ import annotations

import time

import aiosqlite

from batchsvc.embedding import embedding_text
from batchsvc.storage import EmbedTexts, unfinished_reembed

from .indexes import encode
from .support import commit, translated_errors, undo

STAMP_KEY = "embedder"
#: The row readiness rewrites (`health`): its value is the time of the last probe.
PROBE_KEY = "readiness_probe"
#: Memories embedded per transaction: one embedder call each, and a bounded redo if stopped.
REEMBED_CHUNK = 256


async def stamp(conn: aiosqlite.Connection) -> str | None:
    rows = list(
        await conn.execute_fetchall("SELECT value FROM settings WHERE key = ?", (STAMP_KEY,))
    )
    return str(rows[0][0]) if rows else None


async def set_stamp(conn: aiosqlite.Connection, value: str) -> None:
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (STAMP_KEY, value),
    )


async def touch_probe(conn: aiosqlite.Connection) -> None:
    """A real write that changes nothing anyone reads: proof that writes reach the file."""
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (PROBE_KEY, f"{time.time():.3f}"),
    )


async def vector_sizes(conn: aiosqlite.Connection) -> set[int]:
    # length() of a BLOB reads the record header, not the vector itself.
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT length(vector) FROM memories WHERE vector IS NOT NULL"
    )
    return {int(size) // 4 for (size,) in rows}  # float32: 4 bytes a component


async def reembed(conn: aiosqlite.Connection, embed: EmbedTexts, value: str) -> int:
    """Every memory's vector made again by `embed`, REEMBED_CHUNK memories a transaction in
    rowid order; each marks the stamp unfinished, and the last sets it. On the writer, which
    the caller holds."""
    done, after = 0, 0
    while True:
        with translated_errors():
            await conn.execute("BEGIN IMMEDIATE")
            try:
                rows = list(
                    await conn.execute_fetchall(
                        "SELECT rowid, title, content FROM memories WHERE rowid > ? "
                        "ORDER BY rowid LIMIT ?",
                        (after, REEMBED_CHUNK),
                    )
                )
                if not rows:
                    await set_stamp(conn, value)
                else:
                    # With the first vectors changed: the file now holds two models' vectors.
                    await set_stamp(conn, unfinished_reembed(value))
                    vectors = await embed([embedding_text(title, text) for _, title, text in rows])
                    if len(vectors) != len(rows):
                        raise ValueError("the embedder returned a vector count unlike the texts'")
                    await conn.executemany(
                        "UPDATE memories SET vector = ? WHERE rowid = ?",
                        [
                            (encode(v), rowid)
                            for v, (rowid, _, _) in zip(vectors, rows, strict=True)
                        ],
                    )
            except BaseException:
                await undo(conn)
                raise
            await commit(conn)
        if not rows:
            return done
        done += len(rows)
        after = rows[-1][0]
