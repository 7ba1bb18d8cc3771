"""`change_many` in a few statements: the SQLite backend's bulk updates and deletes.

Applying each change with `queries.update` or `delete` costs five or so round trips to
aiosqlite's thread per change. Here every target is read in one SELECT, the changes are
applied in order in Python (each exactly as `update` or `delete` would apply it, on the state
the earlier ones left), and the final state of each touched row is written with one statement
per kind. A change's own fault (FieldError, TextChanged, ValueError: also what SQLite would
refuse to bind, such as a lone surrogate) is found before anything is written, so it leaves
nothing of itself, and the list ends with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite
from attrs import define

from batchsvc.embedding import embedding_text
from batchsvc.models import Memory
from batchsvc.storage import (
    OWN_FAULTS,
    Outcome,
    PlannedChange,
    PlannedDelete,
    PlannedUpdate,
    missed,
    refuse_changed_text,
)

from . import queries as q
from .indexes import Change, deleted, encode, written

#: The vector column as it was: left as it is.
_KEEP = object()


@define
class _Row:
    """A target as the changes so far have left it."""

    rowid: int
    length: int  # words indexed when read
    memory: Memory
    gone: bool = False
    changed: bool = False
    words: tuple[str, ...] | None = None  # new words, if a change rewrote them
    vector: Any = _KEEP  # bytes or None once a change set it
    metadata: str = ""  # the JSON columns, made once a change set them
    tags: str = ""


async def change_rows(
    conn: aiosqlite.Connection,
    tenant: str,
    changes: Sequence[PlannedChange],
    stop_at_miss: bool,
) -> tuple[list[Outcome], list[Change]]:
    """The outcomes of `changes`, applied in the caller's transaction, and their effects on
    the search indexes, in order."""
    rows = await _read(conn, tenant, list(dict.fromkeys(c.memory_id for c in changes)))
    outcomes: list[Outcome] = []
    effects: list[Change] = []
    for change in changes:
        row = rows.get(change.memory_id)
        live = row if row is not None and not row.gone else None
        outcome: Outcome
        if isinstance(change, PlannedDelete):
            outcome = live is not None
            if live is not None:
                live.gone = True
                effects.append(deleted(change.memory_id))
        elif live is None:
            outcome = None
        else:
            try:
                memory = change.patch.apply(live.memory, change.now)
                text_changed = _update(live, memory, change)
            except OWN_FAULTS as fault:
                outcomes.append(fault)
                break
            outcome = memory
            if change.vector is not None or text_changed:  # else the vector still fits
                effects.append(written(memory, change.vector, text_changed))
        outcomes.append(outcome)
        if stop_at_miss and missed(outcome):
            break
    await _write(conn, tenant, list(rows.values()))
    return outcomes, effects


async def _read(conn: aiosqlite.Connection, tenant: str, ids: list[str]) -> dict[str, _Row]:
    found = await conn.execute_fetchall(
        f"SELECT rowid, length, {q.COLUMNS} FROM memories "
        f"WHERE tenant = ? AND id IN ({', '.join('?' * len(ids))})",
        (tenant, *ids),
    )
    rows = [_Row(int(r[0]), int(r[1]), q.to_memory(r[2:])) for r in found]
    return {row.memory.id: row for row in rows}


def _update(row: _Row, memory: Memory, change: PlannedUpdate) -> bool:
    """Apply one update to `row`, as `queries.update` would (the same check, the same
    vector rule); whether its embedded text changed. Everything that can fail comes before
    the row changes: TextChanged, and the ValueError the statement would meet."""
    refuse_changed_text(memory, change.vector, change.vector_text)
    text = embedding_text(memory.title, memory.content)
    old = row.memory
    text_changed = embedding_text(old.title, old.content) != text
    words = tuple(q.words(memory)) if change.patch.changes_text else row.words
    vector = encode(change.vector) if change.vector is not None or text_changed else row.vector
    metadata, tags = q.dump_json(memory.metadata), q.dump_json(list(memory.tags))
    for value in (memory.content, memory.title or "", memory.memory_type, metadata, tags):
        value.encode()  # what SQLite could not bind (a lone surrogate) fails here, and alone
    row.words, row.vector, row.metadata, row.tags = words, vector, metadata, tags
    row.memory, row.changed = memory, True
    return text_changed


async def _write(conn: aiosqlite.Connection, tenant: str, rows: list[_Row]) -> None:
    """Each touched row's final state: updated (with its words and vector where a change
    rewrote them) or deleted, and the tenant's totals."""
    gone = [row for row in rows if row.gone]
    kept = [row for row in rows if row.changed and not row.gone]
    if not gone and not kept:
        return
    tokens = sum(len(r.words) - r.length for r in kept if r.words is not None)
    tokens -= sum(r.length for r in gone)
    [(number,)] = await conn.execute_fetchall(
        "UPDATE tenants SET docs = docs - ?, tokens = tokens + ? WHERE name = ? RETURNING id",
        (len(gone), tokens, tenant),
    )
    for with_vector in (False, True):
        part = [r for r in kept if (r.vector is not _KEEP) == with_vector]
        if part:
            await conn.executemany(
                "UPDATE memories SET content = ?, title = ?, memory_type = ?, metadata = ?, "
                f"tags = ?, updated_at = ?, version = ?, length = ?"
                f"{', vector = ?' if with_vector else ''} WHERE rowid = ?",
                [_values(r, with_vector) for r in part],
            )
    if gone:
        await conn.executemany("DELETE FROM memories WHERE rowid = ?", [(r.rowid,) for r in gone])
    rewritten = [r for r in kept if r.words is not None]
    if gone or rewritten:
        await conn.executemany(
            "DELETE FROM memories_fts WHERE rowid = ?", [(r.rowid,) for r in gone + rewritten]
        )
    if rewritten:
        await conn.executemany(
            "INSERT INTO memories_fts (rowid, words) VALUES (?, ?)",
            [(r.rowid, q.indexed_text(number, r.words or ())) for r in rewritten],
        )


def _values(row: _Row, with_vector: bool) -> tuple[Any, ...]:
    m = row.memory
    length = row.length if row.words is None else len(row.words)
    values = (
        m.content,
        m.title,
        m.memory_type,
        row.metadata,
        row.tags,
        m.updated_at,
        m.version,
        length,
    )
    return (*values, row.vector, row.rowid) if with_vector else (*values, row.rowid)
