"""What the SQLite backend promises beyond the conformance suite: a real file that keeps its
data, a versioned schema, transactions that never leak into each other, truthful cancellation,
the same scores as the reference backend, and the whole service running on it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from batchsvc_backends.memory import MemoryStore
from batchsvc_backends.sqlite.schema import SCHEMA_VERSION
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.config import ConfigError
from batchsvc.errors import BackendError
from batchsvc.models import Memory, MemoryPatch, SearchQuery
from batchsvc.plugins import load_backend
from batchsvc.storage import Storage
from batchsvc.testing import LATER, OTHER, TENANT, make_memory
from tests.helpers.service import ServiceFactory
from tests.helpers.sqlite import Boom, hold_the_loop, open_store


def dump(path: Path) -> list[Any]:
    """Every row of every table (FTS5 shadow tables too) and the schema version."""
    with sqlite3.connect(path) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        state: list[Any] = [conn.execute("PRAGMA user_version").fetchone()]
        for table in sorted(tables):
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            state.append((table, sorted(map(repr, rows))))
    return state


class TestOptions:
    """`from_options` takes a path and a busy timeout, and names anything else."""

    def test_unknown_and_ill_typed_options_are_named(self) -> None:
        with pytest.raises(ValueError, match="colour"):
            SQLiteStore.from_options({"path": "x.db", "colour": "red"})
        with pytest.raises(ValueError, match="path"):
            SQLiteStore.from_options({"path": 5})
        with pytest.raises(ValueError, match="busy_timeout_ms"):
            SQLiteStore.from_options({"busy_timeout_ms": "5"})

    def test_the_entry_point_builds_it(self, db: Path) -> None:
        backend = load_backend("sqlite", {"path": str(db)})
        assert isinstance(backend, SQLiteStore) and backend.path == str(db)
        with pytest.raises(ConfigError, match="nope"):
            load_backend("sqlite", {"nope": 1})


class TestFile:
    """The data lives in the file: it survives a reopen, and the schema carries a version."""

    async def test_data_survives_closing_and_reopening(self, db: Path) -> None:
        kept = make_memory(
            "durable walrus", title="T", metadata={"a": {"b": [1, 2.5]}}, tags=("x",)
        )
        changed, gone = make_memory("first"), make_memory("doomed")
        async with open_store(db) as store:
            for memory in (kept, changed, gone):
                await store.create(TENANT, memory)
            updated = await store.update(TENANT, changed.id, MemoryPatch(content="second"), LATER)
            await store.delete(TENANT, gone.id)
            before = await store.search(TENANT, SearchQuery("walrus second"))
        async with open_store(db) as store:
            assert await store.get(TENANT, kept.id) == kept
            assert await store.get(TENANT, changed.id) == updated
            assert await store.get(TENANT, gone.id) is None
            assert [m.id for m in (await store.list(TENANT)).items] == [changed.id, kept.id]
            assert await store.search(TENANT, SearchQuery("walrus second")) == before

    async def test_metadata_and_tags_come_back_exactly(self, db: Path) -> None:
        """Whatever JSON a memory holds is stored as text that reads back equal, also what
        orjson cannot write (an integer beyond 64 bits, stored through the stdlib)."""
        odd = {
            "ünï": "cödé ✓ \u2028",
            "floats": [1e16, -0.0, 0.1, 1.7976931348623157e308, 5e-324],
            "ints": [0, -(2**63), 2**64 - 1],
            "nested": {"z": None, "a": [True, False, {}], "": []},
        }
        huge = {"big": 2**70, "neg": -(2**80)}
        memories = [
            make_memory("odd", metadata=odd, tags=("ü", "a b", "x" * 64)),
            make_memory("huge", metadata=huge),
        ]
        async with open_store(db) as store:
            for memory in memories:
                await store.create(TENANT, memory)
        async with open_store(db) as store:
            for memory in memories:
                got = await store.get(TENANT, memory.id)
                assert got == memory
                assert got is not None and list(got.metadata) == list(memory.metadata)

    async def test_a_new_file_gets_the_current_schema_in_wal_mode(
        self, store: SQLiteStore, db: Path
    ) -> None:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    async def test_an_empty_version_0_file_is_migrated(self, db: Path) -> None:
        # What sqlite3 leaves behind on a connect with no write: a file with no bytes.
        await asyncio.to_thread(db.parent.mkdir, parents=True)
        await asyncio.to_thread(db.touch)
        async with open_store(db) as store:
            memory = make_memory("migrated heron")
            await store.create(TENANT, memory)
            assert [h.memory for h in await store.search(TENANT, SearchQuery("heron"))] == [memory]
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

    async def test_a_file_from_a_newer_release_is_refused(self, db: Path) -> None:
        await asyncio.to_thread(db.parent.mkdir, parents=True)
        with sqlite3.connect(db) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        with pytest.raises(BackendError, match="newer"):
            async with open_store(db):
                pass


class TestTransactions:
    """One writer: transactions run one at a time and never see each other's changes."""

    async def test_a_second_transaction_waits_and_never_sees_the_first(
        self, store: SQLiteStore
    ) -> None:
        first, second = make_memory("first"), make_memory("second")
        inside, release = asyncio.Event(), asyncio.Event()
        seen: dict[str, Memory | None] = {}

        async def rolled_back() -> None:
            with pytest.raises(Boom):
                async with store.transaction(TENANT) as tx:
                    await tx.create(TENANT, first)
                    inside.set()
                    await release.wait()
                    raise Boom

        async def committed() -> None:
            await inside.wait()
            async with store.transaction(TENANT) as tx:
                seen["first"] = await tx.get(TENANT, first.id)
                await tx.create(TENANT, second)

        tasks = [asyncio.create_task(rolled_back()), asyncio.create_task(committed())]
        await inside.wait()
        await asyncio.sleep(0.05)
        assert not tasks[1].done()  # it waits for the writer, not beside it
        release.set()
        await asyncio.gather(*tasks)
        assert seen == {"first": None}
        assert await store.get(TENANT, first.id) is None
        assert await store.get(TENANT, second.id) == second

    async def test_many_concurrent_transactions_commit_or_roll_back_alone(
        self, store: SQLiteStore
    ) -> None:
        """The leak of FACTS.md: tasks sharing a connection shared a transaction."""

        async def unit(n: int) -> list[Memory]:
            made = [make_memory(f"unit {n} item {i}") for i in range(3)]
            tenant = TENANT if n % 3 else OTHER
            async with store.transaction(tenant) as tx:
                for memory in made:
                    await tx.create(tenant, memory)
                    await asyncio.sleep(0)
                if n % 2:
                    raise Boom
            return made

        outcomes = await asyncio.gather(*(unit(n) for n in range(20)), return_exceptions=True)
        for n, outcome in enumerate(outcomes):
            tenant = TENANT if n % 3 else OTHER
            if n % 2:
                assert isinstance(outcome, Boom)
            else:
                assert isinstance(outcome, list)
                for memory in outcome:
                    assert await store.get(tenant, memory.id) == memory
        listed = [await store.list(tenant, limit=100) for tenant in (TENANT, OTHER)]
        assert sum(len(page.items) for page in listed) == 10 * 3

    async def test_an_ended_transactions_ops_are_refused(self, store: SQLiteStore) -> None:
        straggler = make_memory("straggler")
        async with store.transaction(TENANT) as tx:
            # Not awaited by the block: the commit waits for it rather than leaving it half run.
            pending = asyncio.ensure_future(tx.create(TENANT, straggler))
            await asyncio.sleep(0)
        await pending
        assert await store.get(TENANT, straggler.id) == straggler
        with pytest.raises(BackendError, match="ended"):
            await tx.create(TENANT, make_memory("too late"))
        with pytest.raises(ValueError):
            async with store.transaction(TENANT) as tx:
                await tx.get(OTHER, straggler.id)

    async def test_a_rollback_leaves_the_file_unchanged(self, store: SQLiteStore, db: Path) -> None:
        kept = make_memory("steady otter", metadata={"v": 1}, tags=("t",))
        gone = make_memory("doomed badger")
        for memory in (kept, gone):
            await store.create(TENANT, memory)
        before = dump(db)
        with pytest.raises(Boom):
            async with store.transaction(TENANT) as tx:
                await tx.create(TENANT, make_memory("phantom lynx"))
                await tx.update(
                    TENANT, kept.id, MemoryPatch(content="mutant", metadata={"v": None}), LATER
                )
                await tx.delete(TENANT, gone.id)
                raise Boom
        assert dump(db) == before

    async def test_a_cancelled_transaction_changes_nothing(
        self, store: SQLiteStore, db: Path
    ) -> None:
        await store.create(TENANT, make_memory("already here"))
        before = dump(db)
        inside = asyncio.Event()

        async def body() -> None:
            async with store.transaction(TENANT) as tx:
                await tx.create(TENANT, make_memory("never committed"))
                inside.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(body())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert dump(db) == before
        await store.create(TENANT, make_memory("the writer is free again"))


class TestConcurrentWrites:
    """Writes from many tasks at once all land, each in its own transaction."""

    async def test_every_concurrent_write_lands(self, store: SQLiteStore) -> None:
        target = make_memory("counter")
        await store.create(TENANT, target)
        created = [make_memory(f"parallel kestrel {i}") for i in range(100)]
        patches = [MemoryPatch(metadata={f"k{i}": i}) for i in range(30)]
        await asyncio.gather(
            *(store.create(TENANT, memory) for memory in created),
            *(store.update(TENANT, target.id, patch, LATER) for patch in patches),
            *(store.search(TENANT, SearchQuery("kestrel")) for _ in range(10)),
        )
        got = await store.get(TENANT, target.id)
        assert got is not None and got.version == 31 and len(got.metadata) == 30
        hits = await store.search(TENANT, SearchQuery("kestrel", limit=100))
        assert {hit.memory.id for hit in hits} == {memory.id for memory in created}
        await asyncio.gather(*(store.delete(TENANT, memory.id) for memory in created))
        assert [m.id for m in (await store.list(TENANT)).items] == [target.id]


class TestCancellation:
    """A cancelled write either changed nothing and says so, or finished and returns normally."""

    absorbed = 0
    step = 20e-6

    async def cancel_after(self, call: Any, ticks: int) -> bool:
        """Start `call`, cancel it after `ticks` steps; whether it reported success.

        Each step turns the loop once, then holds it (for a fiftieth of a write) while SQLite's
        thread works, so the cancels land at every phase of a write: waiting for the lock,
        between statements, and during the COMMIT.
        """
        task = asyncio.ensure_future(call)
        for _ in range(ticks):
            await asyncio.sleep(0)
            hold_the_loop(self.step)
        cancelled_in_flight = task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return False
        # Cancelled while running, yet it returned: the cancel came during the commit.
        self.absorbed += cancelled_in_flight
        return True

    async def test_the_store_agrees_with_what_each_cancelled_write_reported(self, db: Path) -> None:
        reports: dict[str, bool] = {}
        async with open_store(db) as store:
            started = time.perf_counter()
            for i in range(10):
                await store.create(TENANT, make_memory(f"timing {i}"))
            # fsync times vary a lot with the machine's load: scale the steps to this run.
            self.step = (time.perf_counter() - started) / 10 / 50
            for ticks in range(150):
                memory = make_memory(f"cancelled {ticks}")
                created = await self.cancel_after(store.create(TENANT, memory), ticks)
                assert (await store.get(TENANT, memory.id) == memory) is created
                reports[memory.id] = created
                if not created:
                    continue
                patch = MemoryPatch(content=f"patched as v{ticks}")
                updated = await self.cancel_after(
                    store.update(TENANT, memory.id, patch, LATER), ticks
                )
                got = await store.get(TENANT, memory.id)
                assert got is not None and got.version == (2 if updated else 1)
                hits = await store.search(TENANT, SearchQuery(f"v{ticks}"))
                assert (memory.id in {h.memory.id for h in hits}) is updated
        outcomes = list(reports.values())
        print(f"created {sum(outcomes)} of {len(outcomes)}; absorbed {self.absorbed}")
        # Both sides of the commit were hit, and some cancels arrived while it ran.
        assert True in outcomes and False in outcomes and self.absorbed > 0
        # Reported successes are durable: a fresh open of the file finds exactly them.
        async with open_store(db) as reopened:
            for memory_id, created in reports.items():
                assert (await reopened.get(TENANT, memory_id) is not None) is created


class TestSearch:
    """Lexical search: the reference backend's scores, per tenant, and no query syntax."""

    TEXTS = (
        "the cat sat on the mat",
        "the dog chased the cat around the garden",
        "the quokka smiled at the cat",
        "a cat and a dog share the sofa",
        "snake_case names and Élan vital, Straße 42",
        'OR AND NOT NEAR quoted "words" with * stars',
    )
    QUERIES = ("cat", "quokka cat", "cat dog sofa", "élan", "snake_case 42", "straße", "or near")

    async def test_scores_equal_the_in_memory_backends(self, store: SQLiteStore) -> None:
        memories = [
            make_memory(text, title="Pets" if i % 2 else None) for i, text in enumerate(self.TEXTS)
        ]
        async with MemoryStore.from_options({}) as reference:
            backends: list[Storage] = [reference, store]
            for backend in backends:
                for memory in memories:
                    await backend.create(TENANT, memory)
                # A stranger's memories must not move our scores (statistics are per tenant).
                for i in range(5):
                    await backend.create(OTHER, make_memory(f"cat cat cat {i}"))
            for text in self.QUERIES:
                query = SearchQuery(text, limit=100)
                theirs, ours = [await backend.search(TENANT, query) for backend in backends]
                assert [h.memory.id for h in ours] == [h.memory.id for h in theirs], text
                for mine, ref in zip(ours, theirs, strict=True):
                    assert mine.score == pytest.approx(ref.score, abs=2e-6)

    @pytest.mark.parametrize(
        "text",
        ['"', 'cat"', "NEAR(cat dog)", "cat*", "-cat", "col:cat", "^cat", "cat AND", "(", "'"],
    )
    async def test_fts5_syntax_in_a_query_is_only_words(
        self, store: SQLiteStore, text: str
    ) -> None:
        cat = make_memory("a cat named near and col")
        await store.create(TENANT, cat)
        hits = await store.search(TENANT, SearchQuery(text))
        assert [h.memory.id for h in hits] in ([], [cat.id])


class TestService:
    """The service end to end on SQLite, through HTTP."""

    async def test_batches_search_and_atomic_through_http(
        self, service_factory: ServiceFactory, db: Path
    ) -> None:
        service = await service_factory(storage=open_store(db))
        creates = [
            {"type": "create", "data": {"content": f"lighthouse keeper {i}", "tags": ["sea"]}}
            for i in range(20)
        ]
        status, body = await service.batch(creates)
        assert status == 200 and body["data"]["processed"] == 20, body
        ids = [op["result"]["id"] for op in body["data"]["operations"]]
        status, body = await service.batch(
            [
                {"type": "update", "id": ids[0], "data": {"content": "a foghorn keeper"}},
                {"type": "search", "query": "foghorn", "options": {"tags": ["sea"]}},
                {"type": "delete", "id": ids[1]},
                {"type": "read", "id": ids[1]},
            ],
            {"continue_on_error": True},
        )
        assert status == 207, body
        results = body["data"]["operations"]
        assert [r["status"] for r in results] == ["success", "success", "success", "failed"]
        assert [hit["id"] for hit in results[1]["result"]["results"]] == [ids[0]]
        assert results[3]["error"]["code"] == "NOT_FOUND"

        failing = [
            {"type": "create", "data": {"content": "never stored albatross"}},
            {"type": "update", "id": ids[2], "data": {"title": "never"}},
            {"type": "read", "id": "mem_0000000000000000"},
        ]
        status, body = await service.batch(failing, {"atomic": True})
        assert status == 422 and body["error"]["code"] == "ATOMIC_BATCH_FAILED", body
        status, body = await service.call(
            "POST", "/api/v1/memories/search", json={"query": "albatross"}
        )
        assert (status, body["data"]["results"]) == (200, [])
        status, body = await service.batch(failing[:2], {"atomic": True})
        assert status == 200, body
        status, body = await service.call("GET", "/api/v1/memories", params={"limit": "100"})
        assert status == 200, body
        listed = [memory["id"] for memory in body["data"]["items"]]
        assert len(listed) == 20 and listed[-1] == ids[0] and ids[1] not in listed
        status, ready = await service.call("GET", "/readyz")
        assert status == 200, ready
