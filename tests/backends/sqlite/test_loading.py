"""Loading a tenant's indexes on the SQLite backend: it holds neither the writer nor the reader,
and the indexes it publishes equal the committed rows, whatever commits while it runs.

A load of a big tenant takes seconds (the first search after a restart). Hostile testing asks
that no tenant stall the others: while it held the writer, every tenant's writes waited for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

import pytest
from batchsvc_backends.sqlite import index_cache
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.models import Memory, MemoryPatch, SearchQuery
from batchsvc.testing import LATER, OTHER, TENANT, make_memory
from batchsvc.testing.conformance_vectors import X, unit
from tests.helpers.search import MODES
from tests.helpers.sqlite import Boom, open_store

WORDS = [f"w{n}" for n in range(60)]
#: Big enough that a load takes a good fraction of a second even on a fast machine.
BIG = 50_000
#: The other tenant's slowest write, as a fraction of the load's duration. Before the fix it
#: waited for the whole load (a ratio near 1).
MAX_STALL_RATIO = 0.3


def random_vector(rng: random.Random) -> tuple[float, ...]:
    return unit(*(rng.uniform(-1, 1) for _ in range(4)))


async def fill(store: SQLiteStore, tenant: str, count: int, rng: random.Random) -> list[Memory]:
    memories: list[Memory] = []
    for start in range(0, count, 1000):
        chunk = [
            (make_memory(" ".join(rng.choices(WORDS, k=8))), random_vector(rng))
            for _ in range(min(1000, count - start))
        ]
        await store.create_many(tenant, chunk)
        memories.extend(memory for memory, _ in chunk)
    return memories


async def timed(awaitable: Any) -> float:
    began = time.perf_counter()
    await awaitable
    return time.perf_counter() - began


class TestNoStall:
    async def test_a_big_tenants_load_does_not_stall_another_tenants_writes(self, db: Path) -> None:
        rng = random.Random(3)
        async with open_store(db) as store:
            await fill(store, TENANT, BIG, rng)
            await store.create(OTHER, make_memory("warm"))
        async with open_store(db) as store:  # a restart: nothing loaded
            query = SearchQuery("w1 w2", mode="hybrid", vector=X, limit=5)
            began = time.perf_counter()
            search = asyncio.create_task(store.search(TENANT, query))
            await asyncio.sleep(0.01)  # the load is under way
            writes: list[float] = []
            reads: list[float] = []
            while not search.done():
                memory = make_memory(" ".join(rng.choices(WORDS, k=8)))
                writes.append(await timed(store.create(OTHER, memory, random_vector(rng))))
                reads.append(await timed(store.get(OTHER, memory.id)))
            assert len(await search) == 5
            load = time.perf_counter() - began
        print(
            f"load {load:.2f} s; {len(writes)} writes of the other tenant meanwhile, slowest "
            f"{max(writes):.3f} s ({max(writes) / load:.2f} x); slowest read {max(reads):.3f} s"
        )
        assert max(writes) < MAX_STALL_RATIO * load
        assert max(reads) < MAX_STALL_RATIO * load


class SlowLoads:
    """Every load of `store` waits before its snapshot and again after it (until `hold` is
    set, if given), so that writes commit in both windows; counts the loads, and says when the
    first one began and when it had read the file."""

    def __init__(
        self, store: SQLiteStore, before: float, after: float, hold: asyncio.Event | None = None
    ) -> None:
        self.began, self.read = asyncio.Event(), asyncio.Event()
        self.count = 0
        load = store._cache.load

        async def slow_load(tenant: str, conn: Any) -> Any:
            self.count += 1
            self.began.set()
            await asyncio.sleep(before)  # registered, no snapshot yet
            indexes = await load(tenant, conn)
            self.read.set()
            await asyncio.sleep(after)  # a snapshot, not yet published
            if hold is not None:
                await hold.wait()
            return indexes

        store._cache.load = slow_load  # type: ignore[method-assign]


async def random_write(store: SQLiteStore, rng: random.Random, live: list[Memory]) -> None:
    """One random create, content update, metadata update, delete or transaction (committed
    or rolled back) of TENANT, or now and then a write of OTHER; `live` kept up to date."""
    vector = random_vector(rng) if rng.random() < 0.8 else None
    action = rng.random()
    if action < 0.3 or not live:
        memory = make_memory(" ".join(rng.choices(WORDS, k=rng.randint(1, 6))))
        live.append(memory)
        await store.create(TENANT, memory, vector)
    elif action < 0.5:
        text = " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
        await store.update(TENANT, rng.choice(live).id, MemoryPatch(content=text), LATER, vector)
    elif action < 0.6:
        await store.update(TENANT, rng.choice(live).id, MemoryPatch(tags=("t",)), LATER)
    elif action < 0.75:
        await store.delete(TENANT, live.pop(rng.randrange(len(live))).id)
    elif action < 0.95:
        await store.create(OTHER, make_memory(rng.choice(WORDS)), vector)
    else:  # rare: a transaction of TENANT waits for its load (before it takes the writer)
        await random_transaction(store, rng, live, commit=rng.random() < 0.5)


async def random_transaction(
    store: SQLiteStore, rng: random.Random, live: list[Memory], *, commit: bool
) -> None:
    mine = list(live)
    with contextlib.suppress(Boom):
        async with store.transaction(TENANT) as tx:
            for _ in range(rng.randint(1, 4)):
                text = " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
                if rng.random() < 0.5 or not mine:
                    memory = make_memory(text)
                    mine.append(memory)
                    await tx.create(TENANT, memory, random_vector(rng))
                else:
                    patch = MemoryPatch(content=text)
                    await tx.update(TENANT, rng.choice(mine).id, patch, LATER, random_vector(rng))
            if not commit:
                raise Boom
            live[:] = mine


def probes(rng: random.Random) -> list[SearchQuery]:
    return [
        SearchQuery(" ".join(rng.sample(WORDS, 2)), mode=mode, vector=random_vector(rng), limit=50)
        for mode in MODES
        for _ in range(5)
    ]


class TestExact:
    """The indexes a load publishes equal a fresh load's, whatever committed while it ran."""

    @pytest.mark.parametrize(("seed", "replay_on_loop"), [(0, 256), (1, 8), (2, 0)])
    async def test_writes_committed_during_a_load_reach_its_indexes(
        self, db: Path, seed: int, replay_on_loop: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Few changes applied on the event loop: most replay in the worker thread's rounds.
        monkeypatch.setattr(index_cache, "REPLAY_ON_LOOP", replay_on_loop)
        rng = random.Random(seed)
        async with open_store(db) as store:
            live = await fill(store, TENANT, 3000, rng)
        for _ in range(3):
            async with open_store(db) as store:  # a restart: the next search loads
                # Long enough, on a busy machine too, for many writes to commit during it.
                slow = SlowLoads(store, rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.2))
                queries = probes(rng)
                search = asyncio.create_task(store.search(TENANT, queries[0]))
                await slow.began.wait()
                during = await writes_until(search, store, rng, live)
                await search
                print(f"{during} writes during the load")
                # Many writes committed during the load; then a few after it, live.
                assert during >= 20
                for _ in range(20):
                    await random_write(store, rng, live)
                seen = [await store.search(TENANT, query) for query in queries]
                assert slow.count == 1
            async with open_store(db) as fresh:
                assert [await fresh.search(TENANT, query) for query in queries] == seen

    async def test_a_reembed_during_a_load_is_not_lost(self, db: Path) -> None:
        rng = random.Random(4)
        async with open_store(db) as store:
            await fill(store, TENANT, 3000, rng)
        queries = [q for q in probes(rng) if q.mode != "lexical"]

        async def embed(texts: list[str]) -> list[tuple[float, ...]]:
            return [random_vector(rng) for _ in texts]

        async with open_store(db) as store:
            reembedded = asyncio.Event()
            slow = SlowLoads(store, 0, 0, hold=reembedded)
            search = asyncio.create_task(store.search(TENANT, queries[0]))
            await slow.read.wait()
            try:
                # New vectors for every memory, while the load under way holds the old ones
                # (and no lock: a load that held the writer would never let this through).
                assert await asyncio.wait_for(store.reembed(embed, "another model"), 10) == 3000
            finally:
                reembedded.set()
            await search
            seen = [await store.search(TENANT, query) for query in queries]
        async with open_store(db) as fresh:
            assert [await fresh.search(TENANT, query) for query in queries] == seen
        assert slow.count == 2  # it dropped what it had read, and loaded again


async def writes_until(
    search: asyncio.Task[Any], store: SQLiteStore, rng: random.Random, live: list[Memory]
) -> int:
    """Random writes by 8 tasks at once until `search` is done; how many completed before."""
    done = 0

    async def writer() -> None:
        nonlocal done
        while not search.done():
            await random_write(store, rng, live)
            done += not search.done()

    await asyncio.gather(*(writer() for _ in range(8)))
    return done


class TestLoadOnce:
    async def test_concurrent_first_searches_share_one_load(self, db: Path) -> None:
        rng = random.Random(5)
        async with open_store(db) as store:
            await fill(store, TENANT, 2000, rng)
        async with open_store(db) as store:
            slow = SlowLoads(store, 0.02, 0.02)
            query = SearchQuery("w1", mode="hybrid", vector=X, limit=10)
            results = await asyncio.gather(*(store.search(TENANT, query) for _ in range(5)))
            assert slow.count == 1
            assert all(hits == results[0] for hits in results)

    async def test_a_transaction_waits_for_a_load_without_holding_the_writer(
        self, db: Path
    ) -> None:
        rng = random.Random(6)
        async with open_store(db) as store:
            await fill(store, TENANT, 2000, rng)
        async with open_store(db) as store:
            slow = SlowLoads(store, 0.3, 0.3)
            query = SearchQuery("w1 w2", mode="hybrid", vector=X, limit=10)
            search = asyncio.create_task(store.search(TENANT, query))
            await slow.began.wait()
            began = time.perf_counter()

            async def in_a_transaction() -> list[Any]:
                async with store.transaction(TENANT) as tx:
                    await tx.create(TENANT, make_memory("w1 w2 w2"), X)
                    return await tx.search(TENANT, query)

            atomic = asyncio.create_task(in_a_transaction())
            await asyncio.sleep(0.05)  # the transaction is waiting for the load
            # Meanwhile the other tenant writes as if nothing were loading.
            write = await timed(store.create(OTHER, make_memory("w1"), X))
            assert write < 0.2
            assert not atomic.done()
            hits = await atomic
            assert time.perf_counter() - began >= 0.5  # it did wait for the load
            assert hits[0].memory.content == "w1 w2 w2"  # its own write, on the indexes
            assert len(await search) == 10
            assert slow.count == 1

    async def test_a_write_checks_a_vectors_length_without_loading(self, db: Path) -> None:
        async with open_store(db) as store:
            await store.create(TENANT, make_memory("w1"), X)
        async with open_store(db) as store:
            slow = SlowLoads(store, 0, 0)
            # The file's vectors have X's length: a write is checked against it, in its group,
            # and no load keeps the writer meanwhile.
            with pytest.raises(ValueError, match="dimensions"):
                await store.create(TENANT, make_memory("w2"), (*X, 0.0))
            await store.create(TENANT, make_memory("w3"), X)
            assert slow.count == 0
            hits = await store.search(TENANT, SearchQuery("w3", mode="hybrid", vector=X))
            assert [hit.memory.content for hit in hits][:1] == ["w3"]
            assert slow.count == 1
