"""Conformance: `DurableVectors`, for backends whose vectors outlive the process.

Every test skips where the backend is not a `batchsvc.storage.DurableVectors`. The embedding
function is made here: each text's vector says which text it was, so the test knows the answer.
"""

from __future__ import annotations

import pytest

from batchsvc.embedding import embedding_text
from batchsvc.models import SearchQuery
from batchsvc.storage import DurableVectors, Storage, Vector
from batchsvc.testing._base import OTHER, TENANT, ConformanceBase, make_memory

X: Vector = (1.0, 0.0, 0.0, 0.0)


def durable(storage: Storage) -> DurableVectors:
    if not isinstance(storage, DurableVectors):
        pytest.skip("the backend's vectors do not outlive it")
    return storage


def three_d(text: str) -> Vector:
    """A unit vector of 3 dimensions: (1, 0, 0) for a text with 'apple', else (0, 1, 0)."""
    return (1.0, 0.0, 0.0) if "apple" in text else (0.0, 1.0, 0.0)


class DurableVectorsConformance(ConformanceBase):
    async def test_the_stamp_starts_unset_and_keeps_the_last_value(self, storage: Storage) -> None:
        store = durable(storage)
        assert await store.vectors_stamp() is None
        await store.set_vectors_stamp("model a")
        await store.set_vectors_stamp("model b")
        assert await store.vectors_stamp() == "model b"

    async def test_vector_sizes_cover_every_tenant(self, storage: Storage) -> None:
        store = durable(storage)
        assert await store.vector_sizes() == set()
        await storage.create(TENANT, make_memory("no vector"))
        assert await store.vector_sizes() == set()
        await storage.create(TENANT, make_memory("four"), X)
        await storage.create(OTHER, make_memory("two"), (0.0, 1.0))
        assert await store.vector_sizes() == {4, 2}

    async def test_reembed_gives_every_memory_its_new_vector(self, storage: Storage) -> None:
        store = durable(storage)
        apple = make_memory("an apple a day", title="fruit")
        pear = make_memory("a pear")
        bare = make_memory("apple pie, no vector yet")
        await storage.create(TENANT, apple, X)
        await storage.create(OTHER, pear, X)
        await storage.create(TENANT, bare)
        seen: list[str] = []

        async def embed_3d(texts: list[str]) -> list[Vector]:
            seen.extend(texts)
            return [three_d(text) for text in texts]

        assert await store.reembed(embed_3d, "three d") == 3
        # What is embedded is each memory's text as the service embeds it, title included.
        assert sorted(seen) == sorted(
            embedding_text(m.title, m.content) for m in (apple, pear, bare)
        )
        assert await store.vectors_stamp() == "three d"
        assert await store.vector_sizes() == {3}
        query = SearchQuery("q", mode="semantic", vector=(1.0, 0.0, 0.0))
        hits = await storage.search(TENANT, query)
        assert {hit.memory.id for hit in hits if hit.score > 0.99} == {apple.id, bare.id}
        other = await storage.search(OTHER, SearchQuery("q", mode="semantic", vector=(0, 1, 0)))
        assert [hit.memory.id for hit in other] == [pear.id]
        assert await storage.get(TENANT, apple.id) == apple  # nothing else changed

    async def test_a_reembed_that_fails_before_any_change_changes_nothing(
        self, storage: Storage
    ) -> None:
        store = durable(storage)
        memory = make_memory("kept as it was")
        await storage.create(TENANT, memory, X)
        await store.set_vectors_stamp("model a")

        async def broken(texts: list[str]) -> list[Vector]:
            raise RuntimeError("the embedder is broken")

        with pytest.raises(Exception):  # noqa: B017 - the backend may wrap it
            await store.reembed(broken, "model b")
        assert await store.vectors_stamp() == "model a"
        assert await store.vector_sizes() == {4}
        hits = await storage.search(TENANT, SearchQuery("q", mode="semantic", vector=X))
        assert [hit.memory.id for hit in hits] == [memory.id]
