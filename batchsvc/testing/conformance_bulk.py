"""Conformance: `create_many`, for backends that offer it (`batchsvc.storage.CreatesMany`).

Every test skips where the backend (or its transaction's ops) has no `create_many`. What it
must show: the memories are stored exactly as `create` stores them, and all or none of them.
"""

from __future__ import annotations

import asyncio

import pytest

from batchsvc.errors import FieldError
from batchsvc.limits import Limits
from batchsvc.models import Memory, MemoryPatch, SearchQuery
from batchsvc.storage import (
    ChangesMany,
    CreatesMany,
    MemoryOps,
    PlannedDelete,
    PlannedUpdate,
    Storage,
    ToCreate,
    Vector,
)
from batchsvc.testing._base import (
    LATER,
    OTHER,
    TENANT,
    ConformanceBase,
    lexical,
    listed_ids,
    make_memory,
    put,
)

MISSING = "mem_0000000000000000"

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


def changes_of(ops: MemoryOps) -> ChangesMany:
    if not isinstance(ops, ChangesMany):
        pytest.skip("the backend has no change_many")
    return ops


class ChangesConformance(ConformanceBase):
    async def test_changes_apply_in_order_with_each_outcome(self, storage: Storage) -> None:
        bulk = changes_of(storage)
        first, second, third = [await put(storage, f"memory {i}") for i in range(3)]
        outcomes = await bulk.change_many(
            TENANT,
            [
                PlannedUpdate(first.id, MemoryPatch(content="first heron"), LATER),
                PlannedDelete(second.id),
                PlannedUpdate(MISSING, MemoryPatch(content="nobody"), LATER),
                PlannedDelete(MISSING),
                PlannedUpdate(first.id, MemoryPatch(title="Twice"), LATER),  # sees the first
                PlannedDelete(second.id),  # gone already
            ],
            stop_at_miss=False,
        )
        expected = MemoryPatch(content="first heron").apply(first, LATER)
        again = MemoryPatch(title="Twice").apply(expected, LATER)
        assert outcomes == [expected, True, None, False, again, False]
        assert await storage.get(TENANT, first.id) == again
        assert await storage.get(TENANT, second.id) is None
        assert await storage.get(TENANT, third.id) == third
        assert [h.memory.id for h in await lexical(storage, "heron")] == [first.id]

    async def test_a_miss_ends_the_list_when_asked(self, storage: Storage) -> None:
        bulk = changes_of(storage)
        kept, doomed = await put(storage, "kept"), await put(storage, "doomed")
        outcomes = await bulk.change_many(
            TENANT,
            [
                PlannedUpdate(kept.id, MemoryPatch(tags=("seen",)), LATER),
                PlannedDelete(MISSING),
                PlannedDelete(doomed.id),
            ],
            stop_at_miss=True,
        )
        assert len(outcomes) == 2 and outcomes[1] is False
        assert await storage.get(TENANT, doomed.id) == doomed  # never reached

    async def test_a_changes_own_fault_ends_the_list_and_leaves_nothing_of_it(
        self, storage: Storage
    ) -> None:
        bulk = changes_of(storage)
        small = await put(storage, "small")
        big = await put(storage, "big", metadata={"blob": "x" * 60})
        later = await put(storage, "later")
        too_big = MemoryPatch(metadata={"more": "y" * 60}, limits=Limits(max_metadata_bytes=100))
        outcomes = await bulk.change_many(
            TENANT,
            [
                PlannedUpdate(small.id, MemoryPatch(content="small changed"), LATER),
                PlannedUpdate(big.id, too_big, LATER),
                PlannedDelete(later.id),
            ],
            stop_at_miss=False,
        )
        assert len(outcomes) == 2 and isinstance(outcomes[1], FieldError)
        changed = await storage.get(TENANT, small.id)
        assert changed is not None and changed.content == "small changed"
        assert await storage.get(TENANT, big.id) == big
        assert await storage.get(TENANT, later.id) == later

    async def test_the_tenant_wall_holds(self, storage: Storage) -> None:
        bulk = changes_of(storage)
        theirs = await put(storage, "theirs", tenant=OTHER)
        outcomes = await bulk.change_many(
            TENANT,
            [PlannedDelete(theirs.id), PlannedUpdate(theirs.id, MemoryPatch(content="x"), LATER)],
            stop_at_miss=False,
        )
        assert outcomes == [False, None]
        assert await storage.get(OTHER, theirs.id) == theirs

    async def test_changes_in_a_transaction_roll_back_with_it(self, storage: Storage) -> None:
        if not storage.supports_transactions:
            pytest.skip("the backend has no transactions")
        kept, gone = await put(storage, "kept walrus"), await put(storage, "gone walrus")

        class Undo(Exception):
            pass

        with pytest.raises(Undo):
            async with storage.transaction(TENANT) as tx:
                await changes_of(tx).change_many(
                    TENANT,
                    [
                        PlannedUpdate(kept.id, MemoryPatch(content="changed"), LATER),
                        PlannedDelete(gone.id),
                    ],
                    stop_at_miss=True,
                )
                raise Undo
        assert await storage.get(TENANT, kept.id) == kept
        assert await storage.get(TENANT, gone.id) == gone
        assert {h.memory.id for h in await lexical(storage, "walrus")} == {kept.id, gone.id}

    async def test_get_many_gives_the_tenants_memories_by_id(self, storage: Storage) -> None:
        bulk = changes_of(storage)
        first, second = await put(storage, "first"), await put(storage, "second")
        theirs = await put(storage, "theirs", tenant=OTHER)
        found = await bulk.get_many(TENANT, [second.id, MISSING, first.id, theirs.id])
        assert found == {first.id: first, second.id: second}
        assert await bulk.get_many(TENANT, []) == {}
