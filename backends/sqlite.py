"""The SQLite backend: durable memories in one file, lexical search with FTS5.

Connections. aiosqlite gives each connection one thread, and tasks sharing a connection share
its transaction (see FACTS.md), so:
- one writer connection, behind an asyncio.Lock: every write, and every `transaction()` for its
  whole life, holds it, so two callers never share a SQLite transaction;
- one reader connection for reads outside transactions. In WAL mode it sees committed data
  only, so nobody reads a change before its commit, and reads never wait for writes. Its own
  lock keeps each read's statements in one snapshot of their own;
- reads inside `transaction()` use the writer connection: they must see their own writes.

Durability: WAL with `synchronous=FULL`, so a write that returned survives a power cut.

Cancellation (the contract in `batchsvc.storage`): a write cancelled before its COMMIT is
rolled back, then the CancelledError goes on, so nothing changed. Once the COMMIT has been sent
it cannot be called back, so a cancel that arrives then is absorbed: the call waits for the
commit and returns its result, as if it had never been cancelled.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite

from batchsvc.errors import BackendError
from batchsvc.models import MEMORY_ID, Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.storage import MemoryOps, Page, Vector

from . import sqlite_queries as q
from .sqlite_schema import migrate
from .sqlite_search import search
from .sqlite_support import Work, run_to_end, translated_errors, undo

T = TypeVar("T")

#: Options and their types; `from_options` rejects anything else.
OPTIONS: dict[str, type] = {"path": str, "busy_timeout_ms": int}
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is not None and not MEMORY_ID.fullmatch(cursor):
        raise ValueError("invalid cursor")
    return cursor


class _Ops:
    """The operations; subclasses say which connection reads and how a write is wrapped."""

    def _reading(self, tenant: str) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    async def _write(self, tenant: str, work: Work[T]) -> T:
        raise NotImplementedError

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        # Lexical only for now: `supports_vectors` is False, so `vector` is never given.
        await self._write(tenant, lambda conn: q.insert(conn, tenant, memory))

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
    ) -> Memory | None:
        return await self._write(tenant, lambda conn: q.update(conn, tenant, memory_id, patch, now))

    async def delete(self, tenant: str, memory_id: str) -> bool:
        return await self._write(tenant, lambda conn: q.delete(conn, tenant, memory_id))

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        async with self._reading(tenant) as conn:
            return await search(conn, tenant, query)

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        before = _decode_cursor(cursor)
        async with self._reading(tenant) as conn:
            # One more than asked tells whether another page exists.
            items = await q.listing(conn, tenant, tags, memory_type, limit + 1, before)
        more = len(items) > limit
        items = items[:limit]
        # The cursor is the last id given out: ids sort by creation, so paging survives writes.
        return Page(items, items[-1].id if more else None)


class _TransactionOps(_Ops):
    """The ops of one open transaction: its tenant only, on the writer connection.

    The executor runs an atomic batch's operations concurrently; a lock of their own keeps each
    one's statements together, and a savepoint makes each write all or nothing inside the
    transaction, so an operation cut short (cancelled, failed) leaves no half of itself behind.
    """

    def __init__(self, conn: aiosqlite.Connection, tenant: str) -> None:
        self._conn = conn
        self._tenant = tenant
        self._lock = asyncio.Lock()
        self.closed = False

    def _check(self, tenant: str) -> None:
        if tenant != self._tenant:
            raise ValueError("a transaction serves only the tenant it was opened for")
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
            with translated_errors():
                yield self._conn

    async def _write(self, tenant: str, work: Work[T]) -> T:
        async with self._lock:
            self._check(tenant)
            with translated_errors():
                try:
                    await self._conn.execute("SAVEPOINT operation")
                    result = await work(self._conn)
                except BaseException:
                    await undo(self._conn, "operation")
                    raise
                await run_to_end(self._conn.execute("RELEASE operation"))
                return result


class SQLiteStore(_Ops):
    """Memories in one SQLite file (WAL), searched through an FTS5 index."""

    supports_transactions = True
    supports_vectors = False

    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        for name, value in options.items():
            expected = OPTIONS.get(name)
            if expected is None:
                raise ValueError(f"unknown sqlite option {name!r}; known: {', '.join(OPTIONS)}")
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(f"sqlite option {name!r} must be a {expected.__name__}")
        path = options.get("path", "data/batchsvc.db")
        if not path:
            raise ValueError("sqlite option 'path' must not be empty")
        busy = options.get("busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS)
        if busy < 0:
            raise ValueError("sqlite option 'busy_timeout_ms' must be 0 or more")
        return cls(path, busy)

    async def _connect(self, *, writer: bool) -> aiosqlite.Connection:
        # isolation_level=None: sqlite3 opens no transactions of its own; we BEGIN explicitly.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        pragmas = [
            f"PRAGMA busy_timeout = {self.busy_timeout_ms:d}",
            "PRAGMA foreign_keys = ON",
            "PRAGMA synchronous = FULL",
        ]
        if writer:
            pragmas.insert(0, "PRAGMA journal_mode = WAL")  # persistent: stored in the file
        else:
            pragmas.append("PRAGMA query_only = ON")
        for pragma in pragmas:
            await conn.execute(pragma)
        return conn

    async def __aenter__(self) -> Self:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with translated_errors():
            self._writer = await self._connect(writer=True)
            try:
                await migrate(self._writer)
                self._reader = await self._connect(writer=False)
            except BaseException:
                await self._writer.close()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The lock lets a write or transaction still under way finish first.
        async with self._write_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
            self._reader = self._writer = None

    def _conn(self, reader: bool) -> aiosqlite.Connection:
        conn = self._reader if reader else self._writer
        if conn is None:
            raise BackendError("the sqlite store is not open")
        return conn

    async def ping(self) -> None:
        async with self._reading("") as conn:
            await conn.execute_fetchall("SELECT 1")

    @asynccontextmanager
    async def _reading(self, tenant: str) -> AsyncIterator[aiosqlite.Connection]:
        conn = self._conn(reader=True)
        async with self._read_lock:
            with translated_errors():
                # One snapshot for all of a read's statements (a search runs several).
                try:
                    await conn.execute("BEGIN")
                    yield conn
                finally:
                    await run_to_end(conn.rollback())

    async def _write(self, tenant: str, work: Work[T]) -> T:
        conn = self._conn(reader=False)
        async with self._write_lock:  # a cancel while waiting here has changed nothing
            with translated_errors():
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                    result = await work(conn)
                except BaseException:
                    await undo(conn)
                    raise
                await self._commit(conn)
                return result

    async def _commit(self, conn: aiosqlite.Connection) -> None:
        try:
            # Once sent, the COMMIT happens or fails on its own: wait for it, cancelled or not.
            await run_to_end(conn.commit())
        except sqlite3.Error:
            await undo(conn)  # a failed COMMIT (busy, I/O) may leave the transaction open
            raise

    @asynccontextmanager
    async def transaction(self, tenant: str) -> AsyncIterator[MemoryOps]:
        conn = self._conn(reader=False)
        async with self._write_lock:
            with translated_errors():
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                except BaseException:
                    await undo(conn)
                    raise
            ops = _TransactionOps(conn, tenant)
            try:
                yield ops
            except BaseException:
                await run_to_end(ops.close())
                with translated_errors():
                    await undo(conn)
                raise
            _, cancelled = await run_to_end(ops.close())
            with translated_errors():
                if cancelled:  # nothing is committed yet, so a cancel can still undo it all
                    await undo(conn)
                    raise asyncio.CancelledError
                await self._commit(conn)
