"""Vectors on the SQLite backend beyond the conformance suite: they live in the file (through a
reopen, and after the migration of a version-1 file), the index follows commits only, and
semantic and hybrid scores equal the in-memory backend's, inside transactions too."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batchsvc_backends.memory import MemoryStore
from batchsvc_backends.sqlite import search as sqlite_search
from batchsvc_backends.sqlite.schema import _V1, SCHEMA_VERSION
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.errors import BackendError
from batchsvc.filters import parse_filter
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.search import ranking
from batchsvc.search.vectors import PARALLEL_ROWS, VectorIndex, row_cosines
from batchsvc.storage import MemoryOps, Storage, Vector
from batchsvc.testing import LATER, OTHER, TENANT, make_memory
from batchsvc.testing.conformance_vectors import NEAR_X, X, Y, Z, unit
from tests.helpers.search import MODES
from tests.helpers.sqlite import Boom, open_store

WORDS = ["walrus", "ivory", "colony", "penguin", "ice", "floe", "krill", "seal", "harbour", "tide"]


def ids(hits: list[SearchHit]) -> list[str]:
    return [hit.memory.id for hit in hits]


def semantic(vector: Vector, **kw: Any) -> SearchQuery:
    return SearchQuery("query", mode="semantic", vector=vector, **kw)


def stored_vectors(path: Path) -> dict[str, bytes | None]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, vector FROM memories").fetchall())


class TestDurability:
    """Vectors are columns of the file: a reopen (which rebuilds the index) ranks the same."""

    async def test_vectors_survive_closing_and_reopening(self, db: Path) -> None:
        x, y, bare, gone = (make_memory(f"walrus {i}") for i in range(4))
        queries = [semantic(NEAR_X, limit=10), SearchQuery("walrus", mode="hybrid", vector=Y)]
        async with open_store(db) as store:
            await store.create(TENANT, x, X)
            await store.create(TENANT, y, Z)
            await store.create(TENANT, bare, None)
            await store.create(TENANT, gone, X)
            await store.update(TENANT, y.id, MemoryPatch(title="t"), LATER, Y)
            await store.delete(TENANT, gone.id)
            await store.create(OTHER, make_memory("stranger"), X)
            before = [await store.search(TENANT, query) for query in queries]
        assert ids(before[0]) == [x.id, y.id]
        async with open_store(db) as store:
            assert [await store.search(TENANT, query) for query in queries] == before
            # The rebuilt index takes new writes like the first one did.
            await store.update(TENANT, x.id, MemoryPatch(content="thawed"), LATER)
            assert ids(await store.search(TENANT, semantic(X))) == [y.id]
        async with open_store(db) as store:
            assert ids(await store.search(TENANT, semantic(X))) == [y.id]
        assert stored_vectors(db)[bare.id] is None

    async def test_a_version_1_file_is_migrated_and_takes_vectors(self, db: Path) -> None:
        old = make_memory("walrus from the old release")
        async with open_store(db) as store:
            await store.create(TENANT, old)
        # Take the file back to version 1 exactly: the column and the settings (version 3)
        # dropped, the version lowered.
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE settings")
            conn.execute("ALTER TABLE memories DROP COLUMN vector")
            conn.execute("PRAGMA user_version = 1")
        with sqlite3.connect(":memory:") as fresh, sqlite3.connect(db) as conn:
            for statement in _V1:
                fresh.execute(statement)
            query = "SELECT sql FROM sqlite_master WHERE name = 'memories'"
            assert conn.execute(query).fetchone() == fresh.execute(query).fetchone()
        new = make_memory("walrus of this release")
        async with open_store(db) as store:
            assert await store.get(TENANT, old.id) == old
            assert await store.search(TENANT, semantic(X)) == []  # it has no vector yet
            await store.create(TENANT, new, X)
            await store.update(TENANT, old.id, MemoryPatch(content="walrus again"), LATER, Y)
            hybrid = await store.search(TENANT, SearchQuery("walrus", mode="hybrid", vector=X))
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        async with open_store(db) as store:
            assert ids(await store.search(TENANT, semantic(X))) == [new.id, old.id]
            assert ids(await store.search(TENANT, semantic(Y)))[0] == old.id
            assert await store.search(TENANT, SearchQuery("walrus", mode="hybrid", vector=X)) == (
                hybrid
            )


class TestIndexFollowsCommits:
    """Only committed writes reach the index, and the index always agrees with the file."""

    async def test_a_failed_write_leaves_no_vector(self, store: SQLiteStore) -> None:
        memory = make_memory("first")
        await store.create(TENANT, memory, X)
        await store.search(TENANT, semantic(X))  # the index is loaded
        with pytest.raises(BackendError):
            await store.create(TENANT, memory, Z)  # the same id: the INSERT fails
        assert [hit.score for hit in await store.search(TENANT, semantic(Z))] == [0.0]
        with pytest.raises(ValueError):
            await store.create(TENANT, make_memory("wrong size"), (1.0, 0.0))
        assert ids(await store.search(TENANT, semantic(X))) == [memory.id]

    async def test_a_transaction_sees_its_staged_vectors_and_others_do_not(
        self, store: SQLiteStore, db: Path
    ) -> None:
        kept, changed = make_memory("kept"), make_memory("changed")
        await store.create(TENANT, kept, X)
        await store.create(TENANT, changed, Y)
        before = stored_vectors(db)
        with pytest.raises(Boom):
            async with store.transaction(TENANT) as tx:
                phantom = make_memory("phantom")
                await tx.create(TENANT, phantom, Z)
                await tx.update(TENANT, changed.id, MemoryPatch(content="new"), LATER, X)
                inside = await tx.search(TENANT, semantic(X))
                assert ids(inside)[:2] == [changed.id, kept.id]  # both at 1.0: newest first
                assert ids(await tx.search(TENANT, semantic(Z)))[0] == phantom.id
                # Outside the transaction nothing of it is visible.
                assert ids(await store.search(TENANT, semantic(Z))) == [changed.id, kept.id]
                raise Boom
        assert stored_vectors(db) == before
        assert ids(await store.search(TENANT, semantic(Y)))[0] == changed.id

    @pytest.mark.parametrize("seed", range(3))
    async def test_random_writes_leave_the_index_equal_to_a_fresh_load(
        self, db: Path, seed: int
    ) -> None:
        rng = random.Random(seed)
        memories: list[Memory] = []
        async with open_store(db) as store:
            for step in range(120):
                action = rng.random()
                vector = (
                    unit(*(rng.uniform(-1, 1) for _ in range(4))) if rng.random() < 0.8 else None
                )
                if action < 0.5 or not memories:
                    memory = make_memory(" ".join(rng.sample(WORDS, 3)))
                    await store.create(TENANT, memory, vector)
                    memories.append(memory)
                elif action < 0.8:
                    target = rng.choice(memories)
                    patch = rng.choice(
                        [MemoryPatch(content=rng.choice(WORDS)), MemoryPatch(tags=("t",))]
                    )
                    await store.update(TENANT, target.id, patch, LATER, vector)
                elif action < 0.9:
                    target = memories.pop(rng.randrange(len(memories)))
                    await store.delete(TENANT, target.id)
                else:
                    with pytest.raises(Boom):
                        async with store.transaction(TENANT) as tx:
                            await tx.create(TENANT, make_memory("rolled back"), vector)
                            raise Boom
                if step == 10:
                    await store.search(TENANT, semantic(X))  # load part way through
            # Every mode: the words index follows the same commits as the vectors.
            probes = [
                SearchQuery(
                    " ".join(rng.sample(WORDS, 2)),
                    mode=mode,
                    vector=unit(*(rng.uniform(-1, 1) for _ in range(4))),
                    limit=100,
                )
                for mode in MODES
                for _ in range(4)
            ]
            live = [await store.search(TENANT, probe) for probe in probes]
            async with store.transaction(TENANT) as tx:
                # Nothing staged yet: the transaction sees the committed indexes.
                assert [await tx.search(TENANT, probe) for probe in probes] == live
                # Its searches see its own writes as the indexes will once it commits.
                await _random_writes(tx, rng, memories, 30)
                inside = [await tx.search(TENANT, probe) for probe in probes]
                # Nobody else sees them meanwhile.
                assert [await store.search(TENANT, probe) for probe in probes] == live
            after = [await store.search(TENANT, probe) for probe in probes]
            for mine, theirs in zip(inside, after, strict=True):
                assert ids(mine) == ids(theirs)
                assert [h.score for h in mine] == [h.score for h in theirs]  # same floats
            assert inside != live  # the writes did change what was found
        async with open_store(db) as store:
            assert [await store.search(TENANT, probe) for probe in probes] == after


class TestStagedScoresAreExact:
    """A transaction's searches score its staged vectors exactly as the index scores them once
    they are committed, to the bit: BLAS would not (a row's sum depends on its matrix)."""

    @pytest.mark.parametrize("dimensions", [4, 64, 256])
    def test_staged_raw_scores_equal_the_committed_ones(self, dimensions: int) -> None:
        rng = random.Random(dimensions)

        def vector() -> Vector:
            return unit(*(rng.uniform(-1, 1) for _ in range(dimensions)))

        base, committed = VectorIndex(), VectorIndex()
        for i in range(500):
            v = vector()
            base.add(f"base{i}", v)
            committed.add(f"base{i}", v)
        staged: dict[str, Vector | None] = {f"new{i}": vector() for i in range(37)}
        staged["base3"], staged["base4"] = vector(), None  # one replaced, one gone
        for memory_id, staged_vector in staged.items():
            if staged_vector is None:
                committed.remove(memory_id)
            else:
                committed.add(memory_id, staged_vector)
        view = sqlite_search.StagedVectors(base, staged)
        for _ in range(20):
            query = vector()
            ids, scores = view.scores(query)
            seen = {
                i: float(scores[view.row(i)])
                for i in ids
                if i is not None and view.row(i) is not None
            }
            theirs_ids, theirs = committed.scores(query)
            expected = {i: float(theirs[row]) for row, i in enumerate(theirs_ids) if i is not None}
            assert seen == expected

    def test_a_large_matrix_scored_on_threads_gives_each_row_its_own_sum(self) -> None:
        rng = np.random.default_rng(3)
        matrix = rng.standard_normal((2 * PARALLEL_ROWS + 7, 96)).astype(np.float32)
        query = tuple(rng.standard_normal(96).tolist())
        whole = row_cosines(matrix, query)  # sliced across threads
        for start in (0, PARALLEL_ROWS - 3, len(matrix) - 5):
            alone = row_cosines(matrix[start : start + 5], query)  # one small matrix
            assert np.array_equal(whole[start : start + 5], alone)


class TestSameRankingAsMemory:
    """Semantic and hybrid hits, scores and order equal the in-memory backend's."""

    async def test_scores_and_order_equal_the_in_memory_backends(self, store: SQLiteStore) -> None:
        rng = random.Random(7)
        async with MemoryStore.from_options({}) as reference:
            backends: list[Storage] = [reference, store]
            for i in range(60):
                memory = make_memory(
                    " ".join(rng.choices(WORDS, k=rng.randint(1, 6))),
                    title="Arctic" if i % 4 == 0 else None,
                    tags=("even",) if i % 2 == 0 else (),
                    metadata={"n": i % 5},
                )
                axis = i % 3
                vector = (
                    None if i % 7 == 0 else unit(*(float(axis == k) + 0.1 * k for k in range(4)))
                )
                for backend in backends:
                    await backend.create(TENANT, memory, vector)
            queries = [
                SearchQuery(text, mode=mode, vector=vector, limit=limit, **extra)
                for text in ("walrus", "krill seal tide", "arctic ice")
                for mode in MODES
                for vector in (X, NEAR_X, unit(0.1, 0.2, 0.9, 0.3))
                for limit, extra in (
                    (100, {}),
                    (5, {"tags": ("even",)}),
                    (10, {"threshold": 0.45}),
                    (10, {"filter": parse_filter({"n": {"$gte": 2}})}),
                )
            ]
            for query in queries:
                await self.compare(query, reference, store)
            # Inside transactions, with staged changes, as well.
            async with reference.transaction(TENANT) as ref_tx, store.transaction(TENANT) as tx:
                extra_memory = make_memory("walrus krill")
                txs: list[MemoryOps] = [ref_tx, tx]
                for ops in txs:
                    await ops.create(TENANT, extra_memory, Z)
                    first = (await ops.search(TENANT, semantic(X, limit=1)))[0].memory.id
                    await ops.update(TENANT, first, MemoryPatch(content="moved"), LATER, Y)
                for query in queries[:36]:
                    await self.compare(query, ref_tx, tx)

    @staticmethod
    async def compare(query: SearchQuery, reference: MemoryOps, ours: MemoryOps) -> None:
        theirs, mine = [await ops.search(TENANT, query) for ops in (reference, ours)]
        assert ids(mine) == ids(theirs), query
        for hit, ref in zip(mine, theirs, strict=True):
            assert hit.score == pytest.approx(ref.score, abs=2e-6)
            assert hit.memory == ref.memory


class TestSearchDuringWrites:
    """A search awaits the file between fetches; writes that commit meanwhile must not make it
    lose or mis-score a memory that matched when it began."""

    async def test_a_memory_re_saved_mid_search_is_still_found(
        self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        memories = [make_memory("walrus " + "filler " * n) for n in range(150)]
        for memory in memories:
            await store.create(TENANT, memory)
        last = memories[-1]  # the lowest score: fetched in a late chunk
        query = SearchQuery("walrus", mode="lexical", limit=150)
        select = ranking.select_fetching  # what the SQLite search calls

        async def with_a_write(query: SearchQuery, candidates: Any, fetch: Any) -> Any:
            async def fetch_after_a_write(ids: list[str]) -> Any:
                if last.id not in ids:  # the first chunk: the write lands before it is read
                    await store.update(TENANT, last.id, MemoryPatch(content="walrus"), LATER, X)
                return await fetch(ids)

            return await select(query, candidates, fetch_after_a_write)

        monkeypatch.setattr(sqlite_search, "select_fetching", with_a_write)
        hits = await store.search(TENANT, query)
        assert last.id in ids(hits)
        assert len(hits) == 150


class TestLoading:
    """A tenant's indexes load from the file once, whatever happens to the search that asked."""

    async def test_a_search_cancelled_while_the_indexes_load_still_loads_them(
        self, db: Path
    ) -> None:
        rng = random.Random(1)
        async with open_store(db) as store, store.transaction(TENANT) as tx:
            for _ in range(3000):
                vector = unit(*(rng.uniform(-1, 1) for _ in range(4)))
                await tx.create(TENANT, make_memory(" ".join(rng.sample(WORDS, 4))), vector)
        async with open_store(db) as store:
            began = asyncio.Event()
            load = store._cache.load

            async def watched_load(tenant: str, conn: Any) -> Any:
                began.set()
                await asyncio.sleep(0.05)  # a load slower than the search's patience
                return await load(tenant, conn)

            store._cache.load = watched_load  # type: ignore[method-assign]
            query = SearchQuery("walrus krill", mode="hybrid", vector=X, limit=5)
            task = asyncio.create_task(store.search(TENANT, query))
            await began.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The load finished anyway: the next search finds the indexes in place.
            assert store._cache.get(TENANT) is not None
            hits = await store.search(TENANT, query)
            assert len(hits) == 5


async def _random_writes(
    ops: MemoryOps, rng: random.Random, memories: list[Memory], n: int
) -> None:
    """`n` random creates, content updates, metadata-only updates and deletes through `ops`
    (`memories`, the live ones, kept up to date)."""
    for _ in range(n):
        vector = unit(*(rng.uniform(-1, 1) for _ in range(4))) if rng.random() < 0.8 else None
        action = rng.random()
        if action < 0.4 or not memories:
            memory = make_memory(" ".join(rng.sample(WORDS, rng.randint(1, 4))))
            await ops.create(TENANT, memory, vector)
            memories.append(memory)
        elif action < 0.6:
            target = rng.choice(memories)
            text = " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
            await ops.update(TENANT, target.id, MemoryPatch(content=text), LATER, vector)
        elif action < 0.8:
            target = rng.choice(memories)
            await ops.update(TENANT, target.id, MemoryPatch(tags=("t",)), LATER)
        else:
            target = memories.pop(rng.randrange(len(memories)))
            await ops.delete(TENANT, target.id)
