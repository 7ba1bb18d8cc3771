"""Conformance: semantic and hybrid search over vectors the test gives, no embedder needed.

The vectors are hand-made unit vectors of 4 dimensions, so the expected ranking is exact and a
backend's tests need no model. Every test skips where `supports_vectors` is False.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from batchsvc.errors import TextChanged
from batchsvc.filters import parse_filter
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.storage import MemoryOps, Storage, Vector
from batchsvc.testing._base import LATER, OTHER, TENANT, ConformanceBase, lexical, make_memory

X: Vector = (1.0, 0.0, 0.0, 0.0)
Y: Vector = (0.0, 1.0, 0.0, 0.0)
Z: Vector = (0.0, 0.0, 1.0, 0.0)


def unit(*components: float) -> Vector:
    norm = math.sqrt(sum(c * c for c in components))
    return tuple(c / norm for c in components)


#: Close to X, further from Y: cosines 0.8 with X and 0.6 with Y.
NEAR_X: Vector = (0.8, 0.6, 0.0, 0.0)


def needs_vectors(storage: Storage) -> None:
    if not storage.supports_vectors:
        pytest.skip("the backend does not rank by vectors")


async def put_vector(
    ops: MemoryOps, content: str, vector: Vector | None, tenant: str = TENANT, **kw: Any
) -> Memory:
    memory = make_memory(content, **kw)
    await ops.create(tenant, memory, vector)
    return memory


async def semantic(
    ops: MemoryOps, vector: Vector, text: str = "query", tenant: str = TENANT, **kw: Any
) -> list[SearchHit]:
    return await ops.search(tenant, SearchQuery(text, mode="semantic", vector=vector, **kw))


async def hybrid(ops: MemoryOps, text: str, vector: Vector, **kw: Any) -> list[SearchHit]:
    return await ops.search(TENANT, SearchQuery(text, mode="hybrid", vector=vector, **kw))


def ids(hits: list[SearchHit]) -> list[str]:
    return [hit.memory.id for hit in hits]


class VectorConformance(ConformanceBase):
    """Semantic and hybrid search: cosine ranking, the same options as lexical, fresh vectors."""

    async def test_semantic_ranks_by_cosine_with_scores_in_unit_range(
        self, storage: Storage
    ) -> None:
        needs_vectors(storage)
        x, y, _ = [await put_vector(storage, f"m{i}", v) for i, v in enumerate((X, Y, Z))]
        hits = await semantic(storage, NEAR_X)
        assert ids(hits)[:2] == [x.id, y.id]
        assert [hit.score for hit in hits[:2]] == pytest.approx([0.8, 0.6], abs=1e-5)
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)

    async def test_semantic_applies_threshold_limit_tags_type_and_filters(
        self, storage: Storage
    ) -> None:
        needs_vectors(storage)
        x = await put_vector(storage, "a", X, tags=("t",), metadata={"k": 1})
        y = await put_vector(storage, "b", Y, tags=("t",), memory_type="project")
        await put_vector(storage, "c", Z)
        assert ids(await semantic(storage, NEAR_X, threshold=0.7)) == [x.id]
        assert ids(await semantic(storage, NEAR_X, limit=1)) == [x.id]
        assert ids(await semantic(storage, NEAR_X, tags=("t",))) == [x.id, y.id]
        assert ids(await semantic(storage, NEAR_X, memory_type="project")) == [y.id]
        assert ids(await semantic(storage, NEAR_X, filter=parse_filter({"k": 1}))) == [x.id]

    async def test_equal_scores_rank_newest_first(self, storage: Storage) -> None:
        needs_vectors(storage)
        older = await put_vector(storage, "same", X)
        newer = await put_vector(storage, "same", X)
        assert ids(await semantic(storage, X)) == [newer.id, older.id]
        assert ids(await semantic(storage, X, limit=1)) == [newer.id]

    async def test_a_memory_without_a_vector_is_found_lexically_only(
        self, storage: Storage
    ) -> None:
        needs_vectors(storage)
        bare = await put_vector(storage, "narwhal tusk", None)
        vectored = await put_vector(storage, "other words", X)
        assert ids(await semantic(storage, X)) == [vectored.id]
        assert bare.id in ids(await hybrid(storage, "narwhal", X))

    async def test_hybrid_ranks_a_memory_that_matches_both_ways_first(
        self, storage: Storage
    ) -> None:
        needs_vectors(storage)
        words_only = await put_vector(storage, "walrus ivory", Y)
        both = await put_vector(storage, "walrus colony", X)
        vector_only = await put_vector(storage, "penguins", X)
        hits = await hybrid(storage, "walrus", X)
        assert ids(hits)[0] == both.id
        assert set(ids(hits)) == {words_only.id, both.id, vector_only.id}
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)
        kept = await hybrid(storage, "walrus", X, threshold=hits[1].score)
        assert ids(kept) == [h.memory.id for h in hits if h.score >= hits[1].score]

    async def test_update_with_a_vector_replaces_it(self, storage: Storage) -> None:
        needs_vectors(storage)
        memory = await put_vector(storage, "first", X)
        other = await put_vector(storage, "other", Y)
        await storage.update(TENANT, memory.id, MemoryPatch(content="second"), LATER, Z)
        assert ids(await semantic(storage, Z))[0] == memory.id
        assert ids(await semantic(storage, X))[0] in {memory.id, other.id}
        [hit] = await semantic(storage, Z, limit=1)
        assert hit.memory.content == "second" and hit.score == pytest.approx(1.0, abs=1e-5)

    async def test_an_update_whose_vector_text_is_stale_changes_nothing(
        self, storage: Storage
    ) -> None:
        """`vector_text` is the text the caller embedded; a memory whose patched text is
        another (its title changed meanwhile) refuses the update whole."""
        needs_vectors(storage)
        memory = await put_vector(storage, "first", X, title="Old")
        patch = MemoryPatch(content="second")
        with pytest.raises(TextChanged):
            await storage.update(TENANT, memory.id, patch, LATER, Z, "Older\nsecond")
        assert await storage.get(TENANT, memory.id) == memory
        assert ids(await semantic(storage, X)) == [memory.id]
        assert [h.memory.id for h in await lexical(storage, "second")] == []
        updated = await storage.update(TENANT, memory.id, patch, LATER, Z, "Old\nsecond")
        assert updated is not None and updated.content == "second"
        assert ids(await semantic(storage, Z)) == [memory.id]
        # Without a vector there is nothing to be stale: the text is not checked.
        retitled = await storage.update(
            TENANT, memory.id, MemoryPatch(title="New"), LATER, None, "x"
        )
        assert retitled is not None and retitled.title == "New"

    async def test_a_text_change_without_a_vector_drops_the_old_one(self, storage: Storage) -> None:
        needs_vectors(storage)
        memory = await put_vector(storage, "first", X)
        await storage.update(TENANT, memory.id, MemoryPatch(content="second"), LATER)
        assert await semantic(storage, X) == []
        await storage.update(TENANT, memory.id, MemoryPatch(tags=("kept",)), LATER, None)
        assert await semantic(storage, X) == []

    async def test_a_metadata_change_keeps_the_vector(self, storage: Storage) -> None:
        needs_vectors(storage)
        memory = await put_vector(storage, "first", X)
        await storage.update(TENANT, memory.id, MemoryPatch(metadata={"k": 1}), LATER)
        assert ids(await semantic(storage, X)) == [memory.id]

    async def test_delete_removes_the_vector(self, storage: Storage) -> None:
        needs_vectors(storage)
        gone = await put_vector(storage, "gone", X)
        kept = await put_vector(storage, "kept", Y)
        await storage.delete(TENANT, gone.id)
        assert ids(await semantic(storage, X)) == [kept.id]

    async def test_a_stranger_finds_nothing_by_vector(self, storage: Storage) -> None:
        needs_vectors(storage)
        ours = await put_vector(storage, "ours", X)
        assert await semantic(storage, X, tenant=OTHER) == []
        theirs = await put_vector(storage, "theirs", X, tenant=OTHER)
        assert ids(await semantic(storage, X)) == [ours.id]
        assert ids(await semantic(storage, X, tenant=OTHER)) == [theirs.id]

    async def test_rollback_restores_every_vector(self, storage: Storage) -> None:
        needs_vectors(storage)
        if not storage.supports_transactions:
            pytest.skip("the backend does not support transactions")
        changed = await put_vector(storage, "changed", X)
        removed = await put_vector(storage, "removed", Y)
        with pytest.raises(RuntimeError):
            async with storage.transaction(TENANT) as tx:
                await put_vector(tx, "phantom", Z)
                await tx.update(TENANT, changed.id, MemoryPatch(content="new"), LATER, Z)
                await tx.delete(TENANT, removed.id)
                raise RuntimeError("roll back")
        assert {hit.memory.id for hit in await semantic(storage, Z)} == {changed.id, removed.id}
        assert ids(await semantic(storage, X))[0] == changed.id
        assert ids(await semantic(storage, Y))[0] == removed.id
        [top] = await semantic(storage, X, limit=1)
        assert top.score == pytest.approx(1.0, abs=1e-5)
