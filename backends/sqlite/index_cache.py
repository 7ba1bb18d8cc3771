"""Each tenant's search indexes of the SQLite backend, loaded once and kept in step.

A load holds none of the backend's locks: at 100,000 memories it takes seconds, and while it
held the writer every tenant's writes waited for it. It reads the tenant's rows in one read
transaction on a connection of its own (a snapshot of the WAL file) and builds the indexes in
a worker thread, while writes go on. Every change committed for the tenant from the moment the
load begins, before its snapshot, is recorded for it (`IndexCache.commit`); the built indexes
replay them in commit order and are published in the same step of the event loop as the last
replayed change, so no commit falls between the snapshot and the indexes' first update: every
later commit updates them. A change already in the snapshot is replayed harmlessly: each sets
a memory's vector and words, or removes them, so it leaves what it had left (`IndexCache`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

import aiosqlite

from .indexes import Change, Indexes, read
from .support import run_to_end

#: Opens a connection of its own for one load, and closes it after.
Connect = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]
#: At most this many changes committed during a load are applied on the event loop, when the
#: load publishes; more are applied first in a worker thread, a round at a time.
REPLAY_ON_LOOP = 256
#: Rounds in the worker thread before the rest is applied on the loop whatever its size: the
#: writes committed during a round are far fewer than those the round applies.
REPLAY_ROUNDS = 4


class _Load:
    """One load under way: every change committed for its tenant since it began."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.task: asyncio.Task[None] | None = None


class IndexCache:
    """Each tenant's indexes, once loaded; each load in flight and the changes it must replay.

    A load holds none of the store's locks: it reads the file on a connection of its own, in
    one snapshot, while writes go on. So that no commit is lost between its snapshot and its
    publication, the load is registered (and `commit` records every change of its tenant for
    it) *before* its snapshot is taken; once built, the indexes replay those changes in commit
    order, then are published, in one step of the event loop after the last replayed change.
    Changes committed before the snapshot are replayed too: harmless, as each sets a memory's
    vector and words (or removes them), so replaying it leaves what it had left.
    """

    def __init__(self) -> None:
        self._indexes: dict[str, Indexes] = {}
        self._loads: dict[str, _Load] = {}
        #: Every load's task until it ends, those `clear` dropped included: `close` waits.
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, tenant: str) -> Indexes | None:
        return self._indexes.get(tenant)

    async def load(self, tenant: str, conn: aiosqlite.Connection) -> Indexes:
        """The tenant's indexes read afresh from `conn`, not yet published."""
        return await read(conn, tenant)

    async def loaded(self, tenant: str, connect: Connect) -> Indexes:
        """The tenant's indexes, loaded first if need be; a load already under way is joined.

        A load runs to its end even if its callers are cancelled (a search's time-out): at
        100,000 memories it takes seconds, and one abandoned each time would never finish for
        a tenant whose load outlasts the time-out. A cancelled caller still waits for it."""
        while (indexes := self._indexes.get(tenant)) is None:
            load = self._loads.get(tenant)
            if load is None:
                # Registered now, before the load's task takes its snapshot: from here on
                # every commit of the tenant is recorded for it.
                load = self._loads[tenant] = _Load()
                load.task = asyncio.create_task(self._load(tenant, load, connect))
                self._tasks.add(load.task)
                load.task.add_done_callback(self._tasks.discard)
            assert load.task is not None
            _, cancelled = await run_to_end(load.task)
            if cancelled:
                raise asyncio.CancelledError
            # Published, or not: cleared meanwhile, or its replay failed. Then load again.
        return indexes

    async def _load(self, tenant: str, load: _Load, connect: Connect) -> None:
        try:
            async with connect() as conn:
                indexes = await self.load(tenant, conn)
            await self._replay(tenant, load, indexes)
        finally:
            if self._loads.get(tenant) is load:
                del self._loads[tenant]

    async def _replay(self, tenant: str, load: _Load, indexes: Indexes) -> None:
        """Apply the changes committed during the load, then publish the indexes, unless
        `clear` dropped the load meanwhile (its snapshot may predate what cleared it)."""
        done = 0
        try:
            for _ in range(REPLAY_ROUNDS):
                if self._loads.get(tenant) is not load:
                    return
                if len(load.changes) - done <= REPLAY_ON_LOOP:
                    break
                # Unpublished, these indexes are this task's alone: a worker thread may apply
                # a copy of the changes so far while commits append more to the list.
                changes = load.changes[done:]
                await asyncio.to_thread(indexes.apply, changes)
                done += len(changes)
            if self._loads.get(tenant) is not load:
                return
            # The rest, and the publication, without a pause: no commit can slip in between.
            indexes.apply(load.changes[done:])
        except Exception:
            # Only vectors of several lengths in the file can make a replay fail (see
            # `_vector_index`); the file has the truth, and `loaded` reads it again.
            return
        self._indexes[tenant] = indexes

    def commit(self, tenant: str, changes: Iterable[Change]) -> None:
        """Committed changes reach loaded indexes, and loads under way; unloaded indexes will
        read them from the file."""
        indexes = self._indexes.get(tenant)
        if indexes is not None:
            indexes.apply(changes)
        elif (load := self._loads.get(tenant)) is not None:
            load.changes.extend(changes)

    def clear(self) -> None:
        """Forget every tenant's indexes, and the loads under way: they may have read the file
        before whatever made the caller clear them, so they publish nothing (their callers
        load again)."""
        self._indexes.clear()
        self._loads.clear()

    async def close(self) -> None:
        """Wait for the loads under way (they use connections of their own), then clear."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        self.clear()
