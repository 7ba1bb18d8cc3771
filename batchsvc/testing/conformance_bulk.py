"""Conformance: `create_many`, for backends that offer it (`batchsvc.storage.CreatesMany`).

Every test skips where the backend (or its transaction's ops) has no `create_many`. What it
must show: the memories are stored exactly as `create` stores them, and all or none of them.
"""

from __future__ import annotations

import asyncio

import pytest

from batchsvc.models import Memory, SearchQuery
from batchsvc.storage import CreatesMany, MemoryOps, Storage, ToCreate, Vector
from batchsvc.testing._base import OTHER, TENANT, ConformanceBase, lexical, listed_ids, make_memory

X: Vector = (1.0, 0.0, 0.0, 0.0)
Y: Vector = (0.0, 1.0, 0.0, 0.0)


def bulk_of(ops: MemoryOps) -> CreatesMany:
    if not isinstance(ops, CreatesMany):
        pytest.skip("the backend has no create_many")
    return ops


def items(*contents: str, vector: Vector | None = None) -> list[ToCreate]:
    return [(make_memory(content), vector) for content in contents]


async def all_absent(ops: MemoryOps, memories: list[Memory], tenant: str = TENANT) -> bool:
    return all([await ops.get(tenant, memory.id) is None for memory in memories])


class BulkConformance(ConformanceBase):
    async def test_create_many_stores_each_memory_as_create_would(self, storage: Storage) -> None:
        bulk = bulk_of(storage)
        new = [
            (make_memory("first heron", title="Birds", metadata={"n": 1}, tags=("a", "b")), None),
            (make_memory("second heron", memory_type="project"), None),
            (make_memory("third egret"), None),
        ]
        await bulk.create_many(TENANT, new)
        for memory, _ in new:
            assert await storage.get(TENANT, memory.id) == memory
        assert await listed_ids(storage) == sorted((m.id for m, _ in new), reverse=True)
        hits = await lexical(storage, "heron")
        assert {hit.memory.id for hit in hits} == {new[0][0].id, new[1][0].id}
        # The tenant wall holds for bulk writes too.
        assert await listed_ids(storage, OTHER) == []
        assert await all_absent(storage, [m for m, _ in new], OTHER)

    async def test_create_many_of_nothing_stores_nothing(self, storage: Storage) -> None:
        await bulk_of(storage).create_many(TENANT, [])
        assert await listed_ids(storage) == []

    async def test_create_many_stores_vectors(self, storage: Storage) -> None:
        if not storage.supports_vectors:
            pytest.skip("the backend does not rank by vectors")
        bulk = bulk_of(storage)
        near_x, near_y = make_memory("alpha"), make_memory("beta")
        await bulk.create_many(TENANT, [(near_x, X), (near_y, Y)])
        hits = await storage.search(TENANT, SearchQuery("q", mode="semantic", vector=Y))
        assert [hit.memory.id for hit in hits][:1] == [near_y.id]
        assert hits[0].score == pytest.approx(1.0)

    async def test_a_vector_of_the_wrong_size_stores_none_of_them(self, storage: Storage) -> None:
        if not storage.supports_vectors:
            pytest.skip("the backend does not rank by vectors")
        bulk = bulk_of(storage)
        before = make_memory("already here")
        await storage.create(TENANT, before, X)
        new = [(make_memory("fine one"), X), (make_memory("bad one"), (1.0, 0.0))]
        with pytest.raises(Exception):  # noqa: B017 - which exception is the backend's choice
            await bulk.create_many(TENANT, new)
        assert await all_absent(storage, [m for m, _ in new])
        assert await listed_ids(storage) == [before.id]
        assert [hit.memory.id for hit in await lexical(storage, "fine bad one")] == []

    async def test_create_many_in_a_transaction_commits_with_it(self, storage: Storage) -> None:
        if not storage.supports_transactions:
            pytest.skip("the backend has no transactions")
        new = items("kept one", "kept two")
        async with storage.transaction(TENANT) as tx:
            await bulk_of(tx).create_many(TENANT, new)
            assert await tx.get(TENANT, new[0][0].id) == new[0][0]
        assert await listed_ids(storage) == sorted((m.id for m, _ in new), reverse=True)

    async def test_create_many_in_a_transaction_rolls_back_with_it(self, storage: Storage) -> None:
        if not storage.supports_transactions:
            pytest.skip("the backend has no transactions")
        new = items("gone one", "gone two")

        class Undo(Exception):
            pass

        with pytest.raises(Undo):
            async with storage.transaction(TENANT) as tx:
                await bulk_of(tx).create_many(TENANT, new)
                raise Undo
        assert await all_absent(storage, [m for m, _ in new])
        assert await lexical(storage, "gone") == []

    async def test_concurrent_bulk_creates_all_land(self, storage: Storage) -> None:
        bulk = bulk_of(storage)
        groups = [items(*(f"group {g} memory {i}" for i in range(20))) for g in range(5)]
        await asyncio.gather(*(bulk.create_many(TENANT, group) for group in groups))
        every = {m.id for group in groups for m, _ in group}
        assert set(await listed_ids(storage)) == every
