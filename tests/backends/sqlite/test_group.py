"""Group commit on the SQLite backend: plain writes waiting at once share one transaction and
one COMMIT, yet each keeps its own outcome, its own failure and a truthful cancellation.

Groups are counted from the file itself: in WAL mode every COMMIT appends a commit record (a
frame whose header gives the database size) to the `-wal` file. A reader held open meanwhile
keeps SQLite from checkpointing the log away, so the records can be counted afterwards.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from batchsvc_backends.memory import MemoryStore
from batchsvc_backends.sqlite.group import GROUP_CAP
from batchsvc_backends.sqlite.indexes import Change
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.errors import BackendError, FieldError
from batchsvc.limits import Limits
from batchsvc.models import Memory, MemoryPatch, SearchQuery
from batchsvc.storage import PlannedDelete, PlannedUpdate, Storage
from batchsvc.testing import LATER, OTHER, TENANT, make_memory
from batchsvc.testing.conformance_vectors import X, Y, unit
from tests.helpers.sqlite import hold_the_loop, open_store


def wal_commits(db: Path) -> int:
    """Commit records in the WAL file: frames of the current log (its salts) whose header
    gives a database size, which SQLite writes only on the last frame of a COMMIT."""
    data = db.with_name(db.name + "-wal").read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frame = 24 + page_size
    commits = 0
    for offset in range(32, len(data) - frame + 1, frame):
        if data[offset + 8 : offset + 16] != salts:
            break  # a frame of an earlier log, left behind by a restart
        commits += struct.unpack(">I", data[offset + 4 : offset + 8])[0] != 0
    return commits


@contextmanager
def wal_kept(db: Path) -> Iterator[None]:
    """Hold a read transaction on the file, so no checkpoint restarts the log meanwhile."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM memories").fetchone()
        yield
    finally:
        conn.close()


def too_big() -> MemoryPatch:
    return MemoryPatch(metadata={"blob": "x" * 200}, limits=Limits(max_metadata_bytes=100))


async def state(store: Storage, tenant: str, ids: list[str]) -> dict[str, Memory | None]:
    return {memory_id: await store.get(tenant, memory_id) for memory_id in ids}


class TestGroupsForm:
    """Writes waiting together commit together: far fewer COMMITs than writes."""

    async def test_concurrent_creates_share_commits_and_sequential_ones_do_not(
        self, store: SQLiteStore, db: Path
    ) -> None:
        await store.create(TENANT, make_memory("before the reader"))
        with wal_kept(db):
            start = wal_commits(db)
            for i in range(10):
                await store.create(TENANT, make_memory(f"alone {i}"))
            assert wal_commits(db) - start == 10  # the counter sees each lone commit
            start = wal_commits(db)
            created = [make_memory(f"together {i}", tags=("t",)) for i in range(200)]
            await asyncio.gather(*(store.create(TENANT, memory) for memory in created))
            # All 200 were queued before the runner's first turn: full groups only.
            assert wal_commits(db) - start == math.ceil(200 / GROUP_CAP)
        page = await store.list(TENANT, tags=("t",), limit=300)
        assert {memory.id for memory in page.items} == {memory.id for memory in created}

    async def test_mixed_writes_of_two_tenants_land_with_their_outcomes(self, db: Path) -> None:
        """Creates, updates and deletes at once, each with the result it would have alone;
        the tenants' statistics come out as the reference backend's (equal lexical scores)."""
        words = ["walrus", "krill", "seal", "tide", "floe", "ivory"]
        old = [make_memory(f"{words[i % 6]} old {i}", metadata={"n": i}) for i in range(30)]
        new = [
            (TENANT if i % 3 else OTHER, make_memory(f"{words[i % 5]} {words[i % 4]} new {i}"))
            for i in range(60)
        ]
        absent = make_memory("never stored").id
        async with MemoryStore.from_options({}) as reference, open_store(db) as store:
            backends: list[Storage] = [reference, store]
            for backend in backends:
                for memory in old:
                    await backend.create(TENANT, memory)
            outcomes: list[list[Any]] = []
            for backend in backends:
                calls = [
                    *(backend.create(tenant, memory) for tenant, memory in new),
                    *(
                        backend.update(TENANT, m.id, MemoryPatch(content=f"seal {i}"), LATER)
                        for i, m in enumerate(old[:10])
                    ),
                    *(
                        backend.update(TENANT, m.id, MemoryPatch(metadata={"x": 1}), LATER)
                        for m in old[10:15]
                    ),
                    *(backend.delete(TENANT, m.id) for m in old[15:25]),
                    backend.update(TENANT, absent, MemoryPatch(title="t"), LATER),
                    backend.delete(TENANT, absent),
                ]
                outcomes.append(await asyncio.gather(*calls))
            assert outcomes[0] == outcomes[1]
            assert outcomes[1][-2:] == [None, False]
            for tenant in (TENANT, OTHER):
                for text in ("walrus", "seal krill", "tide new", "old"):
                    query = SearchQuery(text, limit=100)
                    theirs, ours = [await b.search(tenant, query) for b in backends]
                    assert [h.memory.id for h in ours] == [h.memory.id for h in theirs]
                    for mine, ref in zip(ours, theirs, strict=True):
                        assert mine.score == pytest.approx(ref.score, abs=2e-6)
            every = [m.id for m in old] + [m.id for _, m in new]
            expected = {t: await state(reference, t, every) for t in (TENANT, OTHER)}
        # The file holds exactly what was reported, after a reopen too.
        async with open_store(db) as store:
            assert {t: await state(store, t, every) for t in (TENANT, OTHER)} == expected


class TestFailureIsolation:
    """One write's failure fails that write only; the rest of its group commits."""

    async def test_failing_writes_in_one_group_fail_alone(
        self, store: SQLiteStore, db: Path
    ) -> None:
        kept = make_memory("kept walrus")
        await store.create(TENANT, kept, X)
        await store.search(TENANT, SearchQuery("q", mode="semantic", vector=X))  # index loaded
        targets = [make_memory(f"target {i}") for i in range(4)]
        for memory in targets:
            await store.create(TENANT, memory)
        good = [make_memory(f"good krill {i}") for i in range(7)]
        with wal_kept(db):
            start = wal_commits(db)
            results = await asyncio.gather(
                store.create(TENANT, good[0], Y),
                store.create(TENANT, good[1]),
                store.create(TENANT, kept),  # the id is taken: the bulk insert fails
                store.create(TENANT, good[2]),
                store.create(TENANT, make_memory("short vector"), (1.0, 0.0)),
                store.update(TENANT, targets[0].id, too_big(), LATER),
                store.update(TENANT, targets[1].id, MemoryPatch(content="seal"), LATER),
                store.update(TENANT, targets[2].id, MemoryPatch(title="t"), LATER, (1.0,)),
                store.delete(TENANT, targets[3].id),
                *(store.create(TENANT, memory) for memory in good[3:]),
                return_exceptions=True,
            )
            assert wal_commits(db) - start == 1  # one group, one COMMIT, failures and all
        assert isinstance(results[2], BackendError) and "UNIQUE" in str(results[2])
        assert isinstance(results[4], ValueError)
        assert isinstance(results[5], FieldError)
        assert isinstance(results[7], ValueError)
        assert isinstance(results[6], Memory) and results[6].content == "seal"
        assert results[8] is True
        assert [r for i, r in enumerate(results) if i in (0, 1, 3, 9, 10, 11, 12)] == [None] * 7
        for memory in good:
            assert await store.get(TENANT, memory.id) == memory
        assert await store.get(TENANT, kept.id) == kept
        assert await store.get(TENANT, targets[0].id) == targets[0]
        assert await store.get(TENANT, targets[2].id) == targets[2]
        assert await store.get(TENANT, targets[3].id) is None
        hits = await store.search(TENANT, SearchQuery("krill seal", limit=100))
        assert {h.memory.id for h in hits} == {m.id for m in good} | {targets[1].id}
        semantic = await store.search(TENANT, SearchQuery("q", mode="semantic", vector=Y))
        assert semantic[0].memory.id == good[0].id  # its vector reached the index

    async def test_a_bulk_create_in_a_group_stands_or_falls_alone(
        self, store: SQLiteStore, db: Path
    ) -> None:
        """`create_many` is one entry of its group: a duplicate id inside it (the bulk insert
        fails, and the group is redone entry by entry) fails all of it and nothing else."""
        taken = make_memory("taken id")
        await store.create(TENANT, taken)
        fine = [make_memory(f"fine bulk {i}") for i in range(30)]
        doomed = [make_memory(f"doomed bulk {i}") for i in range(5)] + [taken]
        single = make_memory("fine single")
        with wal_kept(db):
            start = wal_commits(db)
            results = await asyncio.gather(
                store.create_many(TENANT, [(m, None) for m in fine]),
                store.create_many(TENANT, [(m, None) for m in doomed]),
                store.create(TENANT, single),
                return_exceptions=True,
            )
            assert wal_commits(db) - start == 1
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], BackendError) and "UNIQUE" in str(results[1])
        for memory in [*fine, single, taken]:
            assert await store.get(TENANT, memory.id) == memory
        assert await state(store, TENANT, [m.id for m in doomed[:-1]]) == {
            m.id: None for m in doomed[:-1]
        }
        hits = await store.search(TENANT, SearchQuery("bulk", limit=100))
        assert {h.memory.id for h in hits} == {m.id for m in fine}

    async def test_a_bulk_change_in_a_group_keeps_its_outcomes_and_its_neighbours(
        self, store: SQLiteStore, db: Path
    ) -> None:
        """`change_many` is one entry of its group: each change in a savepoint of its own,
        the list ending at a change's own fault, and the group's other writes untouched."""
        targets = [make_memory(f"target {i}") for i in range(3)]
        await store.create_many(TENANT, [(m, None) for m in targets])
        fresh = make_memory("fresh krill")
        with wal_kept(db):
            start = wal_commits(db)
            outcomes, created, single = await asyncio.gather(
                store.change_many(
                    TENANT,
                    [
                        PlannedUpdate(targets[0].id, MemoryPatch(content="krill one"), LATER),
                        PlannedDelete(targets[1].id),
                        PlannedUpdate(targets[2].id, too_big(), LATER),
                        PlannedDelete(targets[0].id),  # never reached
                    ],
                    stop_at_miss=True,
                ),
                store.create(TENANT, fresh),
                store.update(TENANT, targets[2].id, MemoryPatch(title="alone"), LATER),
            )
            assert wal_commits(db) - start == 1
        assert len(outcomes) == 3 and isinstance(outcomes[2], FieldError)
        assert isinstance(outcomes[0], Memory) and outcomes[1] is True
        assert created is None and single is not None and single.title == "alone"
        assert (await store.get(TENANT, targets[0].id)) == outcomes[0]
        assert await store.get(TENANT, targets[1].id) is None
        hits = await store.search(TENANT, SearchQuery("krill", limit=10))
        assert {h.memory.id for h in hits} == {targets[0].id, fresh.id}

    async def test_vectors_of_one_group_are_checked_against_each_other(
        self, store: SQLiteStore
    ) -> None:
        """A tenant without vectors: the first vector of the group sets the length."""
        first, second, third = (make_memory(f"m{i}") for i in range(3))
        results = await asyncio.gather(
            store.create(TENANT, first, unit(1.0, 0.0, 0.0)),
            store.create(TENANT, second, (1.0, 0.0)),
            store.create(TENANT, third, unit(0.0, 1.0, 0.0)),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None and isinstance(results[1], ValueError)
        hits = await store.search(TENANT, SearchQuery("q", mode="semantic", vector=(1, 0, 0)))
        assert [h.memory.id for h in hits] == [first.id, third.id]

    async def test_a_failed_commit_fails_the_whole_group_and_leaves_nothing(
        self, store: SQLiteStore, db: Path
    ) -> None:
        """The COMMIT fails (a deferred foreign key, checked only then): every write of the
        group raises, none is in the file, and a tenant first numbered in it is not cached."""
        await store.create(TENANT, make_memory("before"))
        before = await asyncio.to_thread(dump_rows, db)

        async def orphan(conn: aiosqlite.Connection) -> tuple[None, list[Change]]:
            await conn.execute("PRAGMA defer_foreign_keys = ON")  # reset at the COMMIT
            await conn.execute(
                "INSERT INTO memories (tenant, id, content, memory_type, metadata, tags, "
                "created_at, updated_at, version, length) "
                "VALUES ('no such tenant', 'mem_x', '', 'context', '{}', '[]', '', '', 1, 0)"
            )
            return None, []

        doomed = [("fresh tenant", make_memory("doomed walrus")), (TENANT, make_memory("gone"))]
        results = await asyncio.gather(
            *(store.create(tenant, memory) for tenant, memory in doomed),
            store._write(TENANT, orphan),
            return_exceptions=True,
        )
        assert all(isinstance(r, BackendError) for r in results), results
        assert "FOREIGN KEY" in str(results[0])
        assert await asyncio.to_thread(dump_rows, db) == before
        # The rolled-back row's number goes to the tenant created next. Had "fresh tenant"
        # kept it, its words would be indexed under that tenant's number: each would find the
        # other's memories.
        await store.create("another tenant", make_memory("walrus of another"))
        async with store.transaction("fresh tenant") as tx:  # its row, another number
            await tx.create("fresh tenant", make_memory("first of the fresh tenant"))
        mine = make_memory("walrus of the fresh tenant")
        await store.create("fresh tenant", mine)
        hits = await store.search("fresh tenant", SearchQuery("walrus"))
        assert [h.memory.id for h in hits] == [mine.id]
        assert len(await store.search("another tenant", SearchQuery("walrus"))) == 1

    async def test_a_full_disk_fails_the_writes_that_need_room_only(
        self, store: SQLiteStore
    ) -> None:
        """Disk full (max_page_count at the file's size): creates fail, deletes still commit."""
        victims = [make_memory(f"victim {i}") for i in range(5)]
        for memory in victims:
            await store.create(TENANT, memory)
        writer = store._writer
        assert writer is not None
        pages = next(iter(await writer.execute_fetchall("PRAGMA page_count")))[0]
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        try:
            results = await asyncio.gather(
                *(store.create(TENANT, make_memory("x " * 2000)) for _ in range(5)),
                *(store.delete(TENANT, memory.id) for memory in victims),
                return_exceptions=True,
            )
        finally:
            await writer.execute("PRAGMA max_page_count = 4294967294")
        assert all(isinstance(r, BackendError) and "full" in str(r) for r in results[:5])
        assert results[5:] == [True] * 5
        assert (await store.list(TENANT)).items == []


def dump_rows(path: Path) -> list[Any]:
    with sqlite3.connect(path) as conn:
        return [
            sorted(map(repr, conn.execute(f"SELECT * FROM {table}").fetchall()))
            for table in ("tenants", "memories", "memories_fts")
        ]


class TestCancellation:
    """A cancelled write raises CancelledError having changed nothing, or reports its outcome."""

    async def test_writes_cancelled_while_queued_leave_the_queue(self, store: SQLiteStore) -> None:
        target = make_memory("target")
        await store.create(TENANT, target)
        queued = [make_memory(f"queued {i}") for i in range(10)]
        async with store.transaction(TENANT) as tx:  # holds the writer: the writes must wait
            tasks: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(store.create(TENANT, m)) for m in queued
            ]
            tasks.append(asyncio.ensure_future(store.delete(TENANT, target.id)))
            for _ in range(5):
                await asyncio.sleep(0)
            await tx.create(TENANT, make_memory("in the transaction"))
            for task in tasks[::2]:
                task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for i, outcome in enumerate(outcomes[:-1]):
            if i % 2 == 0:
                assert isinstance(outcome, asyncio.CancelledError)
                assert await store.get(TENANT, queued[i].id) is None
            else:
                assert outcome is None and await store.get(TENANT, queued[i].id) == queued[i]
        assert isinstance(outcomes[-1], asyncio.CancelledError)  # the delete, index 10
        assert await store.get(TENANT, target.id) == target

    async def test_cancels_at_every_point_of_a_group_are_truthful(self, db: Path) -> None:
        """Rounds of creates, updates and deletes queued behind a group already running; half
        of their callers cancelled after 0 to 60 steps of the loop, so the cancels land while
        the writes are queued, while their group runs and during its COMMIT. Each cancelled
        call either raised CancelledError and changed nothing, or returned and its change is
        in, in the store and in the file once reopened."""
        async with open_store(db) as store:
            started = time.perf_counter()
            for i in range(10):
                await store.create(TENANT, make_memory(f"timing {i}"))
            # A step is a fiftieth of a lone write, whatever this machine's fsync costs.
            step = (time.perf_counter() - started) / 10 / 50
            undone = absorbed = 0
            for ticks in range(61):
                olds = [make_memory(f"old {ticks} {i}") for i in range(8)]
                for memory in olds:
                    await store.create(TENANT, memory)
                ahead = [
                    asyncio.ensure_future(store.create(TENANT, make_memory(f"ahead {i}")))
                    for i in range(8)
                ]
                await asyncio.sleep(0)  # the runner takes these: the next writes must queue
                news = [make_memory(f"new {ticks} {i}") for i in range(8)]
                calls = [
                    *(store.create(TENANT, memory) for memory in news),
                    *(
                        store.update(TENANT, m.id, MemoryPatch(content=f"v{ticks}"), LATER)
                        for m in olds[:4]
                    ),
                    *(store.delete(TENANT, m.id) for m in olds[4:]),
                ]
                tasks = [asyncio.ensure_future(call) for call in calls]
                await asyncio.sleep(0)  # every call has started, and is queued
                for _ in range(ticks):
                    await asyncio.sleep(0)
                    hold_the_loop(step)
                hit = sum(task.cancel() for task in tasks[ticks % 2 :: 2])
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
                assert await asyncio.gather(*ahead) == [None] * 8
                for i, outcome in enumerate(outcomes):
                    assert not isinstance(outcome, Exception), outcome
                    cancelled = isinstance(outcome, asyncio.CancelledError)
                    if i < 8:
                        assert (await store.get(TENANT, news[i].id) is None) is cancelled
                    elif i < 12:
                        got = await store.get(TENANT, olds[i - 8].id)
                        assert got is not None and got.version == (1 if cancelled else 2)
                    else:
                        assert (await store.get(TENANT, olds[i - 8].id) is None) is not cancelled
                now_undone = sum(isinstance(o, asyncio.CancelledError) for o in outcomes)
                undone += now_undone
                absorbed += hit - now_undone
            final = {m.id for m in (await store.list(TENANT, limit=5000)).items}
        print(f"cancels that undid their write: {undone}; absorbed: {absorbed}")
        # Both kinds happened: cancels of queued writes, and cancels that came too late.
        assert undone > 0 and absorbed > 0
        async with open_store(db) as reopened:
            assert {m.id for m in (await reopened.list(TENANT, limit=5000)).items} == final


class TestLifecycle:
    """Closing lets the writes already queued finish; later ones are refused; nothing hangs."""

    async def test_closing_finishes_queued_writes_then_refuses(self, db: Path) -> None:
        created = [make_memory(f"late {i}") for i in range(100)]
        store = open_store(db)
        await store.__aenter__()
        tasks = [asyncio.ensure_future(store.create(TENANT, m)) for m in created]
        await asyncio.sleep(0)  # queued, not yet committed
        await asyncio.wait_for(store.__aexit__(None, None, None), 10)
        assert await asyncio.gather(*tasks) == [None] * 100
        with pytest.raises(BackendError, match="not open"):
            await store.create(TENANT, make_memory("after the close"))
        async with open_store(db) as reopened:
            page = await reopened.list(TENANT, limit=200)
            assert {m.id for m in page.items} == {m.id for m in created}

    async def test_closing_waits_for_a_transaction_and_the_writes_behind_it(self, db: Path) -> None:
        async with open_store(db) as store:
            release, holding = asyncio.Event(), asyncio.Event()
            behind = make_memory("behind the transaction")
            inside = make_memory("inside the transaction")

            async def transaction() -> None:
                async with store.transaction(TENANT) as tx:
                    holding.set()
                    await tx.create(TENANT, inside)
                    await release.wait()

            tx_task = asyncio.ensure_future(transaction())
            # It loads its tenant's indexes before it takes the writer: wait till it holds it.
            await holding.wait()
            write = asyncio.ensure_future(store.create(TENANT, behind))
            await asyncio.sleep(0.01)
            closing = asyncio.ensure_future(store.__aexit__(None, None, None))
            await asyncio.sleep(0.01)
            assert not closing.done() and not write.done()
            release.set()
            await asyncio.wait_for(asyncio.gather(tx_task, write, closing), 10)
        async with open_store(db) as reopened:
            assert await reopened.get(TENANT, behind.id) == behind
            assert await reopened.get(TENANT, inside.id) == inside
