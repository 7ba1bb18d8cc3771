"""The operations of the SQLite backend: what each does, on the connection and inside the
write that `batchsvc_backends.sqlite.store.SQLiteStore` (or one of its transactions) provides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from typing import TypeVar

import aiosqlite

from batchsvc.errors import BackendError
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.paging import cut_page, read_cursor
from batchsvc.search.ranking import LexicalScores, VectorScores
from batchsvc.storage import (
    Outcome,
    Page,
    PlannedChange,
    PlannedUpdate,
    ToCreate,
    Vector,
    refuse_other_tenant,
)

from . import queries as q
from .changes import change_rows
from .indexes import (
    Change,
    Created,
    Indexes,
    check,
    created,
    deleted,
    encode,
    vectors_of,
    written,
)
from .search import StagedVectors, StagedWords, indexed_search
from .support import Work, run_to_end, translated_errors, undo

T = TypeVar("T")
#: The store's loader of a tenant's indexes; it takes none of the store's locks, so a
#: transaction may call it while it holds the writer.
IndexesLoader = Callable[[str], Awaitable[Indexes]]


class Ops:
    """The operations; subclasses say which connection reads and how a write is wrapped."""

    def _reading(self, tenant: str) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    async def _write(
        self,
        tenant: str,
        work: Work[tuple[T, list[Change]]],
        vectors: Sequence[Vector] = (),
        new: Created | None = None,
    ) -> T:
        """Run `work` as one write; its changes reach the indexes once they commit.
        `vectors`, those the write stores, are checked against the index first. `new`, when
        the write is a create, holds its rows: the store may insert them with others rather
        than through `work`, to the same effect."""
        raise NotImplementedError

    async def _indexes(self, tenant: str) -> tuple[VectorScores, LexicalScores]:
        """What a search ranks by: vectors and words."""
        raise NotImplementedError

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        await self.create_many(tenant, [(memory, vector)])

    async def create_many(self, tenant: str, items: Sequence[ToCreate]) -> None:
        new = created(tenant, items)
        if not new.rows:
            return

        async def work(conn: aiosqlite.Connection) -> tuple[None, list[Change]]:
            await q.insert_many(conn, new.rows, {})
            return None, new.changes

        await self._write(tenant, work, [v for _, v in items if v is not None], new)

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        async with self._reading(tenant) as conn:
            return await q.fetch(conn, tenant, memory_id)

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        change = PlannedUpdate(memory_id, patch, now, vector, vector_text)

        async def work(conn: aiosqlite.Connection) -> tuple[Memory | None, list[Change]]:
            return await _update_on(conn, tenant, change)

        return await self._write(tenant, work, () if vector is None else (vector,))

    async def delete(self, tenant: str, memory_id: str) -> bool:
        async def work(conn: aiosqlite.Connection) -> tuple[bool, list[Change]]:
            return await _delete_on(conn, tenant, memory_id)

        return await self._write(tenant, work)

    async def get_many(self, tenant: str, memory_ids: Sequence[str]) -> dict[str, Memory]:
        async with self._reading(tenant) as conn:
            return await q.fetch_many(conn, tenant, memory_ids)

    async def change_many(
        self, tenant: str, changes: Sequence[PlannedChange], *, stop_at_miss: bool
    ) -> list[Outcome]:
        vectors = [c.vector for c in changes if isinstance(c, PlannedUpdate) and c.vector]

        async def work(conn: aiosqlite.Connection) -> tuple[list[Outcome], list[Change]]:
            return await change_rows(conn, tenant, changes, stop_at_miss)

        return await self._write(tenant, work, vectors)

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        vectors, words = await self._indexes(tenant)  # before `_reading`: loading takes locks
        async with self._reading(tenant) as conn:
            return await indexed_search(conn, tenant, query, vectors, words)

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        before = read_cursor(cursor)
        async with self._reading(tenant) as conn:
            found = await q.listing(conn, tenant, tags, memory_type, limit + 1, before)
        return cut_page(found, limit)


class TransactionOps(Ops):
    """The ops of one open transaction: its tenant only, on the writer connection.

    The executor runs an atomic batch's operations concurrently; a lock of their own keeps each
    one's statements together, and a savepoint makes each write all or nothing inside the
    transaction, so an operation cut short (cancelled, failed) leaves no half of itself behind.
    """

    def __init__(
        self,
        loaded: IndexesLoader,
        conn: aiosqlite.Connection,
        tenant: str,
        watched: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._loaded = loaded
        self._conn = conn
        self._tenant = tenant
        #: The store's watch on errors leaving it (readiness learns of a damaged file).
        self._watched = watched
        self._lock = asyncio.Lock()
        self.closed = False
        #: Vector changes of the writes so far, for the index once the transaction commits.
        self.staged: list[Change] = []

    def _check(self, tenant: str) -> None:
        refuse_other_tenant(self._tenant, tenant)
        if self.closed:
            raise BackendError("the transaction has ended")

    async def close(self) -> None:
        """Wait out an operation still under way, then refuse any more.

        Only then may the transaction commit or roll back: a straggler's remaining statements
        would otherwise run after it, outside any transaction and the writer's lock.
        """
        async with self._lock:
            self.closed = True

    @asynccontextmanager
    async def _reading(self, tenant: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            self._check(tenant)
            with self._watched(), translated_errors():
                yield self._conn

    async def _indexes(self, tenant: str) -> tuple[VectorScores, LexicalScores]:
        async with self._lock:
            self._check(tenant)
            # The transaction holds the store's write lock, so no commit changes the indexes
            # under these views while they are used. (It loaded them before taking the lock.)
            indexes = await self._loaded(tenant)
            return (
                StagedVectors(indexes.vectors, vectors_of(self.staged)),
                StagedWords(indexes.words, self.staged),
            )

    async def _write(
        self,
        tenant: str,
        work: Work[tuple[T, list[Change]]],
        vectors: Sequence[Vector] = (),
        new: Created | None = None,
    ) -> T:
        async with self._lock:
            self._check(tenant)
            if vectors:
                size = (await self._loaded(tenant)).vectors.dimensions
                check(size, vectors_of(self.staged), vectors)
            with self._watched(), translated_errors():
                try:
                    await self._conn.execute("SAVEPOINT operation")
                    result, changes = await work(self._conn)
                except BaseException:
                    await undo(self._conn, "operation")
                    raise
                await run_to_end(self._conn.execute("RELEASE operation"))
                self.staged.extend(changes)
                return result


async def _update_on(
    conn: aiosqlite.Connection, tenant: str, change: PlannedUpdate
) -> tuple[Memory | None, list[Change]]:
    """An update on `conn`, in the caller's transaction; its result and index changes."""
    vector = change.vector
    done = await q.update(
        conn, tenant, change.memory_id, change.patch, change.now, encode(vector), change.vector_text
    )
    if done is None:
        return None, []
    memory, text_changed = done
    if vector is None and not text_changed:
        return memory, []  # the vector, if any, still describes the text
    return memory, [written(memory, vector, text_changed)]


async def _delete_on(
    conn: aiosqlite.Connection, tenant: str, memory_id: str
) -> tuple[bool, list[Change]]:
    gone = await q.delete(conn, tenant, memory_id)
    return gone, [deleted(memory_id)] if gone else []
