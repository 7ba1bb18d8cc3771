"""The SQL of each operation, on whatever connection and transaction the caller chose.

Nothing here commits, locks or handles cancellation: `batchsvc_backends.sqlite.store` decides which
connection runs a function and wraps writes in a transaction. Every function takes the tenant
and names it in each statement, so no query can reach another tenant's rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite
import orjson

from batchsvc.embedding import embedding_text
from batchsvc.models import Memory, MemoryPatch
from batchsvc.search.lexical import tokenize
from batchsvc.storage import refuse_changed_text

COLUMNS = "id, content, title, memory_type, metadata, tags, created_at, updated_at, version"


def words(memory: Memory) -> list[str]:
    """The words search ranks a memory by: those the in-memory backend indexes."""
    title = tokenize(memory.title) if memory.title else []
    return title + tokenize(memory.content)


def indexed_text(tenant_number: int, tokens: Iterable[str]) -> str:
    """The FTS row: each word behind its tenant's number (see `schema`)."""
    prefix = f"{tenant_number}_"
    joined = f" {prefix}".join(tokens)
    return prefix + joined if joined else ""


def dump_json(value: Any) -> str:
    # orjson, as the service reads bodies: compact, key order and Unicode kept, and several
    # times faster than the stdlib, which a write pays twice. Its one refusal here, an integer
    # beyond 64 bits (which no request can carry, see `limits.HUGE`), goes to the stdlib.
    # It would write NaN and infinities as null, but metadata holds JSON values only (the
    # storage contract): no request can carry those either.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_memory(row: Sequence[Any]) -> Memory:
    """A row of COLUMNS as a Memory."""
    return Memory(
        id=row[0],
        content=row[1],
        title=row[2],
        memory_type=row[3],
        metadata=json.loads(row[4]),
        tags=tuple(json.loads(row[5])),
        created_at=row[6],
        updated_at=row[7],
        version=row[8],
    )


async def fetch(conn: aiosqlite.Connection, tenant: str, memory_id: str) -> Memory | None:
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {COLUMNS} FROM memories WHERE tenant = ? AND id = ?", (tenant, memory_id)
        )
    )
    return to_memory(rows[0]) if rows else None


async def fetch_many(
    conn: aiosqlite.Connection, tenant: str, memory_ids: Sequence[str]
) -> dict[str, Memory]:
    if not memory_ids:
        return {}
    rows = await conn.execute_fetchall(
        f"SELECT {COLUMNS} FROM memories "
        f"WHERE tenant = ? AND id IN ({', '.join('?' * len(memory_ids))})",
        (tenant, *memory_ids),
    )
    return {memory.id: memory for memory in map(to_memory, rows)}


async def _count_in(conn: aiosqlite.Connection, tenant: str, docs: int, tokens: int) -> int:
    """Add to the tenant's totals (creating its row) and return its number."""
    rows = list(
        await conn.execute_fetchall(
            "INSERT INTO tenants (name, docs, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET docs = docs + excluded.docs, "
            "tokens = tokens + excluded.tokens RETURNING id",
            (tenant, docs, tokens),
        )
    )
    return int(rows[0][0])


_INSERT = (
    f"INSERT INTO memories (rowid, tenant, {COLUMNS}, length, vector) "
    f"VALUES ({', '.join('?' * 13)})"
)


def _row(
    rowid: int, tenant: str, memory: Memory, length: int, vector: bytes | None
) -> tuple[Any, ...]:
    """The parameters of `_INSERT`."""
    return (
        rowid,
        tenant,
        memory.id,
        memory.content,
        memory.title,
        memory.memory_type,
        dump_json(memory.metadata),
        dump_json(list(memory.tags)),
        memory.created_at,
        memory.updated_at,
        memory.version,
        length,
        vector,
    )


#: A new memory for `insert_many`: its tenant, the memory, its vector as
#: `indexes.encode` made it, and its words as `words` gives them (made once, by the
#: caller, which also hands them to the in-memory index).
NewRow = tuple[str, Memory, bytes | None, Sequence[str]]


async def insert_many(
    conn: aiosqlite.Connection, rows: Sequence[NewRow], numbers: Mapping[str, int]
) -> dict[str, int]:
    """Store new memories in a number of statements that does not grow with the rows: a
    round trip to aiosqlite's thread costs more than a row.

    `numbers` are tenant numbers the caller already knows (a tenant's never changes once its
    row is committed); a tenant not among them costs one statement, and its number is returned
    so that the caller can keep it once this transaction has committed.
    """
    totals: dict[str, tuple[int, int]] = {}
    for tenant, _, _, found in rows:
        docs, count = totals.get(tenant, (0, 0))
        totals[tenant] = (docs + 1, count + len(found))
    learned = {
        tenant: await _count_in(conn, tenant, docs, count)
        for tenant, (docs, count) in totals.items()
        if tenant not in numbers
    }
    known = [
        (docs, count, tenant, numbers[tenant])
        for tenant, (docs, count) in totals.items()
        if tenant in numbers
    ]
    if known:
        cursor = await conn.executemany(
            "UPDATE tenants SET docs = docs + ?, tokens = tokens + ? WHERE name = ? AND id = ?",
            known,
        )
        # A number the file does not confirm would index words under another tenant's.
        if cursor.rowcount != len(known):
            raise sqlite3.IntegrityError("a remembered tenant number is not in the file")
    # The rowids SQLite itself would choose (no AUTOINCREMENT: one past the largest), chosen
    # here so that the FTS rows can name them: looking each up again by (tenant, id) cost
    # more than the rest of the insert. The caller's transaction holds the only writer.
    [(largest,)] = await conn.execute_fetchall("SELECT coalesce(max(rowid), 0) FROM memories")
    first = int(largest) + 1
    await conn.executemany(
        _INSERT,
        [
            _row(first + k, tenant, memory, len(found), vector)
            for k, (tenant, memory, vector, found) in enumerate(rows)
        ],
    )
    number = {t: learned[t] if t in learned else numbers[t] for t in totals}
    await conn.executemany(
        "INSERT INTO memories_fts (rowid, words) VALUES (?, ?)",
        [
            (first + k, indexed_text(number[tenant], found))
            for k, (tenant, _, _, found) in enumerate(rows)
        ],
    )
    return learned


async def update(
    conn: aiosqlite.Connection,
    tenant: str,
    memory_id: str,
    patch: MemoryPatch,
    now: str,
    vector: bytes | None = None,
    vector_text: str | None = None,
) -> tuple[Memory, bool] | None:
    """Read, patch, write; the caller holds the transaction that makes it one step.

    Returns the new memory and whether its embedded text changed. `vector` replaces the stored
    embedding; without one, a text change clears it (the storage contract's rule). Raises
    TextChanged, having written nothing, if the patched text is not `vector_text` (given with
    `vector`: `batchsvc.storage.refuse_changed_text`)."""
    rows = list(
        await conn.execute_fetchall(
            f"SELECT rowid, length, {COLUMNS} FROM memories WHERE tenant = ? AND id = ?",
            (tenant, memory_id),
        )
    )
    if not rows:
        return None
    rowid, old_length = rows[0][0], rows[0][1]
    # May raise FieldError: nothing has been written yet, and the caller rolls back anyway.
    old = to_memory(rows[0][2:])
    memory = patch.apply(old, now)
    tokens = words(memory) if patch.changes_text else None
    refuse_changed_text(memory, vector, vector_text)
    text = embedding_text(memory.title, memory.content)
    text_changed = embedding_text(old.title, old.content) != text
    set_vector = vector is not None or text_changed
    await conn.execute(
        "UPDATE memories SET content = ?, title = ?, memory_type = ?, metadata = ?, tags = ?, "
        f"updated_at = ?, version = ?, length = ?{', vector = ?' if set_vector else ''} "
        "WHERE rowid = ?",
        (
            memory.content,
            memory.title,
            memory.memory_type,
            dump_json(memory.metadata),
            dump_json(list(memory.tags)),
            memory.updated_at,
            memory.version,
            old_length if tokens is None else len(tokens),
            *((vector,) if set_vector else ()),
            rowid,
        ),
    )
    if tokens is not None:
        number = await _count_in(conn, tenant, 0, len(tokens) - old_length)
        await conn.execute("DELETE FROM memories_fts WHERE rowid = ?", (rowid,))
        await conn.execute(
            "INSERT INTO memories_fts (rowid, words) VALUES (?, ?)",
            (rowid, indexed_text(number, tokens)),
        )
    return memory, text_changed


async def delete(conn: aiosqlite.Connection, tenant: str, memory_id: str) -> bool:
    rows = list(
        await conn.execute_fetchall(
            "DELETE FROM memories WHERE tenant = ? AND id = ? RETURNING rowid, length",
            (tenant, memory_id),
        )
    )
    if not rows:
        return False
    rowid, length = rows[0]
    await conn.execute("DELETE FROM memories_fts WHERE rowid = ?", (rowid,))
    await _count_in(conn, tenant, -1, -length)
    return True


def kind_filters(tags: tuple[str, ...], memory_type: str | None) -> tuple[str, list[Any]]:
    """SQL conditions on `memories m` for tags (all present) and type, with their parameters."""
    sql, params = "", []
    if memory_type is not None:
        sql += " AND m.memory_type = ?"
        params.append(memory_type)
    for tag in dict.fromkeys(tags):
        sql += " AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?)"
        params.append(tag)
    return sql, params


async def listing(
    conn: aiosqlite.Connection,
    tenant: str,
    tags: tuple[str, ...],
    memory_type: str | None,
    limit: int,
    before: str | None,
) -> list[Memory]:
    """Up to `limit` memories newest first (by id), with ids below `before` when given."""
    where, params = kind_filters(tags, memory_type)
    if before is not None:
        where += " AND m.id < ?"
        params.append(before)
    rows = await conn.execute_fetchall(
        f"SELECT {COLUMNS} FROM memories m WHERE m.tenant = ?{where} ORDER BY m.id DESC LIMIT ?",
        (tenant, *params, limit),
    )
    return [to_memory(row) for row in rows]
