"""Group commit: the SQLite backend's plain writes (those outside `transaction()`) share
transactions.

Why: a write in a transaction of its own pays an fsync at its COMMIT (`synchronous=FULL`) and
about six round trips to aiosqlite's thread, a thread hop each: some 1,500 creates a second.
Yet writes seldom come alone: the executor runs up to 16 operations of a batch at once, and
several batches run side by side. Writes waiting for the writer at the same moment are
concurrent, so any order of them is one their callers could have seen; they can share one
transaction and one fsync, and creates one statement per table.

How a group runs (`GroupCommit`):
- A write joins a queue. One runner task, started by a write that finds none running, takes up
  to `GROUP_CAP` queued writes under the store's write lock (so a `transaction()` still has
  the writer to itself) and runs them in one BEGIN IMMEDIATE ... COMMIT. A group never waits
  for a tenant's indexes to load: it checks a vector's length against the loaded index, or
  else against the file (`indexes.stored_size`).
- Creates come first, stored together by `queries.insert_many`. Updates and deletes
  follow one by one, each inside a SAVEPOINT, so one that fails (a FieldError from its patch,
  a vector of the wrong length, an SQLite error) rolls back alone.
- If the bulk insert fails (say, an id already taken), the transaction is rolled back (it held
  nothing else yet) and begun again with the creates one by one in savepoints, so each gets its
  true outcome. If SQLite ends the transaction itself (disk full, I/O error), the group is
  rolled back and each write redone in a transaction of its own, as before group commit.
- No caller learns its outcome before its group's COMMIT has succeeded, and the vector index
  gets the group's changes only after it, in the group's order. If the COMMIT fails, each write
  of the group fails with that error, and nothing of the group is in the file. (A load under
  way records them too, to replay: see `index_cache`.)

Cancellation (the contract of `batchsvc.storage`): a caller cancelled while its write is still
queued takes it out of the queue and raises CancelledError, having changed nothing. Once the
runner has taken the write, its fate no longer depends on the caller's task, so the cancel is
absorbed: the caller waits for the group and reports what really happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, TypeVar, cast

import aiosqlite
from attrs import define, field

from batchsvc.errors import BackendError
from batchsvc.search.vectors import Row
from batchsvc.storage import Vector

from . import queries as q
from .index_cache import IndexCache
from .indexes import Change, Created, check, stored_size, vectors_of
from .support import Work, commit, run_to_end, translated_errors, undo

T = TypeVar("T")
#: The most writes one transaction takes: bounds the wait of the last one, and a redo's cost.
GROUP_CAP = 64
#: Each tenant's vector changes made so far by the writes of the transaction under way.
Staged = dict[str, dict[str, Vector | Row | None]]


@define(eq=False)  # identity: a queue removes its own entry, not an equal one
class Pending:
    """One queued write, and its outcome in the attempt under way."""

    tenant: str
    work: Work[tuple[Any, list[Change]]]
    #: The vectors the write stores, checked against the tenant's index before it runs.
    vectors: Sequence[Vector]
    #: The new memories when the write is a create: the group may insert them with others.
    new: Created | None
    future: asyncio.Future[Any]
    #: Taken into a group: from then on only the runner settles it.
    started: bool = False
    ok: bool = False
    result: Any = None
    changes: list[Change] = field(factory=list)
    error: Exception | None = None

    def succeed(self, result: Any, changes: list[Change]) -> None:
        self.ok, self.result, self.changes, self.error = True, result, changes, None

    def fail(self, error: Exception) -> None:
        self.ok, self.result, self.changes, self.error = False, None, [], error

    def settle(self) -> None:
        if self.future.done():
            return
        if self.error is None:
            self.future.set_result(self.result)
        else:
            self.future.set_exception(self.error)


class GroupCommit:
    """The queue of plain writes and the runner that commits them in groups."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        lock: asyncio.Lock,
        cache: IndexCache,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._cache = cache
        self._queue: deque[Pending] = deque()
        self._runner: asyncio.Task[None] | None = None
        #: Tenant numbers from committed rows; a tenant's never changes once committed.
        self._numbers: dict[str, int] = {}
        #: The length of each unloaded tenant's vectors in the file, asked once per group.
        self._sizes: dict[str, int | None] = {}
        self._closed = False

    async def write(
        self,
        tenant: str,
        work: Work[tuple[T, list[Change]]],
        vectors: Sequence[Vector],
        new: Created | None,
    ) -> T:
        """Run `work` in the next group; return its result once that group has committed."""
        if self._closed:
            raise BackendError("the sqlite store is closed")
        future = asyncio.get_running_loop().create_future()
        pending = Pending(tenant, work, vectors, new, future)
        self._queue.append(pending)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        try:
            # Shielded: a cancel must not cancel the future the runner will settle.
            return cast(T, await asyncio.shield(future))
        except asyncio.CancelledError:
            if not pending.started:
                self._queue.remove(pending)
                raise
        result, _ = await run_to_end(future)
        return cast(T, result)

    async def close(self) -> None:
        """Refuse new writes, and let those already queued or running finish."""
        self._closed = True
        while (runner := self._runner) is not None:
            await asyncio.wait({runner})

    async def _run(self) -> None:
        try:
            while self._queue:
                cancelled = False
                async with self._lock:
                    # Callers cancelled while the lock was busy may have emptied the queue.
                    group = [self._queue.popleft() for _ in range(min(GROUP_CAP, len(self._queue)))]
                    for pending in group:
                        pending.started = True
                    if group:
                        # The group's task runs on if this one is cancelled (the loop is
                        # closing): its callers wait for it, and must learn its real outcome.
                        _, cancelled = await run_to_end(self._group(group))
                if cancelled:
                    raise asyncio.CancelledError
                # The callers just answered are about to queue their next writes: one turn of
                # the loop lets them join the next group rather than start a group of one.
                await asyncio.sleep(0)
        finally:
            self._runner = None
            while self._queue:  # only if cancelled: these never ran
                stranded = self._queue.popleft()
                stranded.started = True
                stranded.fail(BackendError("the sqlite store stopped before this write ran"))
                stranded.settle()

    async def _group(self, group: list[Pending]) -> None:
        try:
            await self._commit_group(group)
        except BaseException as error:
            # A fault of the runner, not of one write (the connection closed under it, or the
            # loop is closing). Nothing after a COMMIT awaits or raises, and `commit` waits for
            # its end even if cancelled, so whoever is still unsettled had nothing committed.
            with suppress(Exception):
                await undo(self._conn)
            stopped = BackendError("the sqlite store stopped during this write")
            for pending in group:
                if not pending.future.done():
                    pending.fail(error if isinstance(error, Exception) else stopped)
                    pending.settle()
            if not isinstance(error, Exception):
                raise
            return  # the callers have the error; the runner goes on with the next group
        for pending in group:
            pending.settle()

    async def _commit_group(self, group: list[Pending]) -> None:
        conn = self._conn
        creates = [pending for pending in group if pending.new is not None]
        order = creates + [pending for pending in group if pending.new is None]
        try:
            with translated_errors():
                await conn.execute("BEGIN IMMEDIATE")
        except Exception as error:
            await undo(conn)
            for pending in order:
                pending.fail(error)
            return
        try:
            learned = await self._attempt(conn, creates, order[len(creates) :])
        except sqlite3.Error:
            # SQLite ended the transaction itself (disk full, I/O error): what each write would
            # do alone is unknown, so each is redone alone.
            await undo(conn)
            await self._each_alone(order)
            return
        if not any(pending.ok for pending in order):
            await undo(conn)
            return
        try:
            with translated_errors():
                await commit(conn)
        except Exception as error:
            for pending in order:
                if pending.ok:
                    pending.fail(error)
            return
        self._numbers.update(learned)
        for pending in order:
            if pending.ok:
                self._publish(pending)

    async def _attempt(
        self, conn: aiosqlite.Connection, creates: list[Pending], others: list[Pending]
    ) -> dict[str, int]:
        """Every write of the group in the open transaction; the tenant numbers it assigned."""
        staged: Staged = {}
        self._sizes.clear()
        learned = await self._bulk(conn, creates, staged) if creates else {}
        # A write alone needs no savepoint: its failure rolls back the transaction, all its own.
        alone = not creates and len(others) == 1
        for pending in others:
            await self._single(conn, pending, staged, savepoint=not alone)
        return learned

    async def _bulk(
        self, conn: aiosqlite.Connection, creates: list[Pending], staged: Staged
    ) -> dict[str, int]:
        rows: list[Pending] = []
        for pending in creates:
            try:
                await self._check(pending, staged)
            except Exception as error:
                pending.fail(error)
                continue
            rows.append(pending)
            staged.setdefault(pending.tenant, {}).update(vectors_of(_new(pending).changes))
        if not rows:
            return {}
        try:
            learned = await q.insert_many(
                conn, [row for p in rows for row in _new(p).rows], self._numbers
            )
        except Exception:
            # The transaction holds only these inserts: start it again and find the culprit.
            for pending in rows:  # and look the numbers up again next time, to be sure
                self._numbers.pop(pending.tenant, None)
            await undo(conn)
            await conn.execute("BEGIN IMMEDIATE")
            staged.clear()
            for pending in creates:
                await self._single(conn, pending, staged, savepoint=True)
            return {}
        for pending in rows:
            pending.succeed(None, _new(pending).changes)
        return learned

    async def _single(
        self, conn: aiosqlite.Connection, pending: Pending, staged: Staged, *, savepoint: bool
    ) -> None:
        """One write in the open transaction. An error that is the write's own is its outcome;
        one that leaves no transaction (SQLite rolled it back) propagates."""
        try:
            await self._check(pending, staged)
        except Exception as error:
            pending.fail(error)
            return
        if savepoint:
            await conn.execute("SAVEPOINT write")
        try:
            with translated_errors():
                result, changes = await pending.work(conn)
        except Exception as error:
            pending.fail(error)
            await undo(conn, "write" if savepoint else None)
            return
        if savepoint:
            await conn.execute("RELEASE write")
        pending.succeed(result, changes)
        staged.setdefault(pending.tenant, {}).update(vectors_of(changes))

    async def _check(self, pending: Pending, staged: Staged) -> None:
        """Refuse a vector the tenant's index could not take, given the writes before it."""
        if pending.vectors:
            size = await self._vector_size(pending.tenant)
            check(size, staged.get(pending.tenant, {}), pending.vectors)

    async def _vector_size(self, tenant: str) -> int | None:
        """The length of the tenant's indexed vectors: its index's if loaded, else the one a
        load would find in the file, without loading: a group holds the writer, and a load
        takes seconds. The file is asked once per tenant and group (a round trip per write
        halved the rate of creates with vectors): the group's own writes are in `staged`."""
        indexes = self._cache.get(tenant)
        if indexes is not None:
            return indexes.vectors.dimensions
        if tenant not in self._sizes:
            self._sizes[tenant] = await stored_size(self._conn, tenant)
        return self._sizes[tenant]

    async def _each_alone(self, order: list[Pending]) -> None:
        """Each write in a transaction of its own, as plain writes ran before group commit."""
        conn = self._conn
        for pending in order:
            try:
                with translated_errors():
                    if pending.vectors:
                        self._sizes.clear()  # the writes before it have committed
                        check(await self._vector_size(pending.tenant), {}, pending.vectors)
                    try:
                        await conn.execute("BEGIN IMMEDIATE")
                        result, changes = await pending.work(conn)
                    except BaseException:
                        await undo(conn)
                        raise
                    await commit(conn)
            except Exception as error:
                pending.fail(error)
            else:
                pending.succeed(result, changes)
                self._publish(pending)
            pending.settle()

    def _publish(self, pending: Pending) -> None:
        """A committed write's changes reach the indexes."""
        try:
            self._cache.commit(pending.tenant, pending.changes)
        except Exception:
            # Committed all the same, so it must be reported so; the file has the truth, and
            # the indexes are rebuilt from it when next needed.
            self._cache.clear()


def _new(pending: Pending) -> Created:
    """A create's rows and changes (only creates go through `_bulk`)."""
    assert pending.new is not None
    return pending.new
