"""The SQLite backend: durable memories in one file, lexical search with FTS5, and vectors
(a column of each row); both ranked from per-tenant indexes in memory: see `indexes`.

Connections. aiosqlite gives each connection one thread, and tasks sharing a connection share
its transaction (see docs/spec/FACTS.md), so:
- one writer connection, behind an asyncio.Lock: each group of plain writes, and every
  `transaction()` for its whole life, holds it, so a transaction never shares a SQLite
  transaction with anyone. Plain writes waiting at the same time share one transaction and
  one COMMIT (group commit, `group`), each with its own outcome;
- one reader connection for reads outside transactions. In WAL mode it sees committed data
  only, so nobody reads a change before its commit, and reads never wait for writes. Its own
  lock keeps each read's statements in one snapshot of their own;
- reads inside `transaction()` use the writer connection: they must see their own writes;
- each load of a tenant's indexes opens a connection of its own for its one read transaction,
  and holds neither the writer nor the reader: it takes seconds for a big tenant, and no
  tenant may stall the others (`index_cache` says why its indexes are exact all the same).
  A transaction loads its tenant's indexes before it takes the writer, as it may need them.

Durability: WAL with `synchronous=FULL`, so a write that returned survives a power cut.

Cancellation (the contract in `batchsvc.storage`): a plain write cancelled while it is still
queued leaves the queue, and the CancelledError goes on: nothing changed. Once its group has
started, a cancel is absorbed: the call waits for the group and reports its real outcome. A
transaction cancelled before its COMMIT is rolled back; once the COMMIT has been sent it cannot
be called back, so a cancel that arrives then is absorbed the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite

from batchsvc.errors import BackendError, CorruptBackendError
from batchsvc.plugins.options import Option, read_options
from batchsvc.search.ranking import LexicalScores, VectorScores
from batchsvc.storage import EmbedTexts, MemoryOps, Readiness, Vector

from . import settings
from .group import GroupCommit
from .health import Health
from .index_cache import IndexCache
from .indexes import Change, Created, Indexes
from .lock import FileLock
from .opening import cannot_open, probe_write
from .ops import Ops, TransactionOps
from .schema import migrate
from .support import Work, commit, run_to_end, translated_errors, undo

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 5000
#: The options `from_options` takes; it refuses anything else.
OPTIONS = {
    "path": Option(str, "data/batchsvc.db", empty=False),
    "busy_timeout_ms": Option(int, DEFAULT_BUSY_TIMEOUT_MS, minimum=0),
}


class SQLiteStore(Ops):
    """Memories in one SQLite file (WAL), searched through FTS5 and per-tenant vector indexes."""

    supports_transactions = True
    supports_vectors = True

    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._group: GroupCommit | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._cache = IndexCache()
        self._file_lock = FileLock(path)
        self._health = Health(path, self._probe)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        values = read_options(options, OPTIONS, "the sqlite backend")
        return cls(values["path"], values["busy_timeout_ms"])

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
        try:
            for pragma in pragmas:
                await conn.execute(pragma)
        except BaseException:
            # The first statement is where a damaged file shows ("file is not a database").
            # aiosqlite's thread is not a daemon: a connection left open keeps the process
            # alive after a failed start, so it is closed before the error goes on.
            with suppress(Exception):  # the thread stops even if the close fails
                await run_to_end(conn.close())
            raise
        return conn

    async def __aenter__(self) -> Self:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file_lock.acquire()
        except OSError as error:
            raise BackendError(cannot_open(self.path, error)) from error
        try:
            await self._open()
        except BaseException:
            self._file_lock.release()
            raise
        self._group = GroupCommit(self._writer_conn(), self._write_lock, self._cache)
        return self

    async def _open(self) -> None:
        """Both connections, the schema brought up to date, and one real write: a file no
        write can reach (read-only, damaged, on a full disk) stops the start here, with a
        message that says why, rather than answering reads and failing every write."""
        try:
            with translated_errors():
                self._writer = await self._connect(writer=True)
                try:
                    await migrate(self._writer)
                    await probe_write(self._writer)
                    self._reader = await self._connect(writer=False)
                except BaseException:
                    with suppress(Exception):
                        await run_to_end(self._writer.close())
                    self._writer = None
                    raise
        except BackendError as error:
            raise BackendError(cannot_open(self.path, error)) from error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Writes already queued or under way finish first; the lock waits out a transaction.
        await self._health.close()
        if self._group is not None:
            await self._group.close()
        async with self._write_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
            self._reader = self._writer = None
            self._group = None
            self._cache.clear()
        await self._cache.close()  # loads under way end on connections of their own
        self._file_lock.release()

    def _writer_conn(self) -> aiosqlite.Connection:
        assert self._writer is not None
        return self._writer

    def _conn(self, reader: bool) -> aiosqlite.Connection:
        conn = self._reader if reader else self._writer
        if conn is None:
            raise BackendError("the sqlite store is not open")
        return conn

    async def ping(self) -> None:
        async with self._reading("") as conn:
            await conn.execute_fetchall("SELECT 1")

    async def readiness(self) -> Readiness:
        return await self._health.readiness()

    async def _probe(self) -> None:
        """The readiness probe: one settings row rewritten, with the writes of the moment."""

        async def work(conn: aiosqlite.Connection) -> tuple[None, list[Change]]:
            await settings.touch_probe(conn)
            return None, []

        await self._write("", work)

    @contextmanager
    def _watched(self) -> Iterator[None]:
        """Errors on their way out, seen by readiness; a damaged file's named in them."""
        try:
            yield
        except CorruptBackendError as error:
            self._health.saw(error)
            if self.path in str(error):
                raise
            raise CorruptBackendError(
                f"the SQLite database {self.path} is damaged ({error})"
            ) from error
        except BackendError as error:
            self._health.saw(error)
            raise

    @asynccontextmanager
    async def _reading(self, tenant: str) -> AsyncIterator[aiosqlite.Connection]:
        conn = self._conn(reader=True)
        async with self._read_lock:
            with self._watched(), translated_errors():
                # One snapshot for all of a read's statements (a search runs several).
                try:
                    await conn.execute("BEGIN")
                    yield conn
                finally:
                    await run_to_end(conn.rollback())

    async def _loaded_indexes(self, tenant: str) -> Indexes:
        """The tenant's indexes, loaded from the file if need be. A load takes none of the
        store's locks (see `index_cache`): it may be awaited with the writer held."""
        with self._watched(), translated_errors():
            return await self._cache.loaded(tenant, self._load_connection)

    @asynccontextmanager
    async def _load_connection(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection of a load's own: it reads for seconds, and other reads must not wait."""
        if self._reader is None:
            raise BackendError("the sqlite store is not open")
        conn = await self._connect(writer=False)
        try:
            yield conn
        finally:
            await run_to_end(conn.close())

    async def _indexes(self, tenant: str) -> tuple[VectorScores, LexicalScores]:
        indexes = self._cache.get(tenant) or await self._loaded_indexes(tenant)
        return indexes.vectors, indexes.words

    async def _write(
        self,
        tenant: str,
        work: Work[tuple[T, list[Change]]],
        vectors: Sequence[Vector] = (),
        new: Created | None = None,
    ) -> T:
        if self._group is None:
            raise BackendError("the sqlite store is not open")
        with self._watched():
            return await self._group.write(tenant, work, vectors, new)

    # DurableVectors: the stamp of the vectors' model, and re-embedding them all. -------------

    async def vectors_stamp(self) -> str | None:
        async with self._reading("") as conn:
            return await settings.stamp(conn)

    async def vector_sizes(self) -> set[int]:
        async with self._reading("") as conn:
            return await settings.vector_sizes(conn)

    async def set_vectors_stamp(self, stamp: str) -> None:
        conn = self._conn(reader=False)
        async with self._write_lock:
            with self._watched(), translated_errors():
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    await settings.set_stamp(conn, stamp)
                except BaseException:
                    await undo(conn)
                    raise
                await commit(conn)

    async def reembed(self, embed: EmbedTexts, stamp: str) -> int:
        conn = self._conn(reader=False)
        async with self._write_lock:
            try:
                return await settings.reembed(conn, embed, stamp)
            finally:
                self._cache.clear()  # the indexes hold the old vectors: read them again

    @asynccontextmanager
    async def transaction(self, tenant: str) -> AsyncIterator[MemoryOps]:
        # Its searches and vector checks need the tenant's indexes while it holds the writer:
        # loaded now, before, so that a load never keeps the writer from the other tenants.
        await self._loaded_indexes(tenant)
        async with self._write_lock:
            conn = self._conn(reader=False)  # the store may have closed while it loaded
            with self._watched(), translated_errors():
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                except BaseException:
                    await undo(conn)
                    raise
            ops = TransactionOps(self._loaded_indexes, conn, tenant, self._watched)
            try:
                yield ops
            except BaseException:
                await run_to_end(ops.close())
                with self._watched(), translated_errors():
                    await undo(conn)
                raise
            _, cancelled = await run_to_end(ops.close())
            with self._watched(), translated_errors():
                if cancelled:  # nothing is committed yet, so a cancel can still undo it all
                    await undo(conn)
                    raise asyncio.CancelledError
                await commit(conn)
                try:
                    self._cache.commit(tenant, ops.staged)
                except Exception:
                    # Committed all the same; the file has the truth, and the indexes are
                    # rebuilt from it when next needed (as `GroupCommit._publish` does).
                    self._cache.clear()
