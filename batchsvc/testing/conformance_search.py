"""Conformance: search ranking, search filters, and every metadata filter operator.

Filter tests compare a backend's hits with `batchsvc.filters.matches` applied in Python over a
fixed corpus, so a backend whose compiled filter drifts from the reference semantics fails.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from batchsvc.filters import matches, parse_filter
from batchsvc.models import MEMORY_TYPES, Memory, MemoryPatch, SearchQuery
from batchsvc.storage import Storage
from batchsvc.testing._base import TENANT, ConformanceBase, lexical, listed_ids, make_memory, put

# Every kind of value a filter must tell apart: ints and floats that are equal, booleans next
# to 0 and 1, numeric strings, arrays, objects, null, a literal dotted key, upper and lower case.
CORPUS_METADATA: list[dict[str, Any]] = [
    {"color": "red", "n": 1, "flag": True, "name": "apple", "owner": {"name": "ann", "age": 30}},
    {"color": "blue", "n": 2.5, "flag": False, "name": "Banana", "owner": {"name": "bob"}},
    {"color": "green", "n": 5, "name": "cherry", "owner": {"name": "ann", "age": 25.5}},
    {"color": "red", "n": 5.0, "name": "élan", "owner": "bob"},
    {"color": ["red", "blue"], "n": [1, 5], "name": "zebra"},
    {"color": {"shade": "red"}, "n": -3, "owner": {"address": {"city": "Oslo"}}},
    {"n": True, "flag": 1, "name": "Zed"},
    {"n": False, "flag": 0, "color": ""},
    {"n": "7", "color": "RED", "name": "b"},
    {"n": 0, "x": None, "name": "a b"},
    {"owner.name": "ann", "n": 10**12},
    {},
    {"n": 9.75, "flag": True, "color": "blue", "owner": {"name": "cy", "age": 30.0}},
    {"a": {"b": {"c": 1}}, "n": 2},
    {"a": {"b": {"c": "1"}}, "name": "bb"},
    {"a": {"b": [{"c": 1}]}, "n": 5.5},
]

FILTERS: list[Any] = [
    # equality, implicit and explicit; 5 == 5.0; true is not 1, false is not 0; case matters
    {"color": "red"},
    {"color": {"$eq": "red"}},
    {"color": "RED"},
    {"color": ""},
    {"n": 5},
    {"n": 5.0},
    {"n": {"$eq": 2.5}},
    {"n": 1},
    {"n": 0},
    {"n": 10**12},
    {"n": "7"},
    {"flag": True},
    {"flag": False},
    {"flag": 1},
    # $ne: only memories that have the key, with a scalar of the same kind and another value
    {"color": {"$ne": "red"}},
    {"n": {"$ne": 5}},
    {"flag": {"$ne": True}},
    {"x": {"$ne": "a"}},
    {"owner": {"$ne": "ann"}},
    {"missing": {"$ne": 1}},
    # order comparisons on numbers (ints and floats mixed) and on strings (by code point)
    {"n": {"$gt": 2}},
    {"n": {"$gte": 5}},
    {"n": {"$lt": 2.5}},
    {"n": {"$lte": 2.5}},
    {"n": {"$gt": 5.25}},
    {"n": {"$gt": -5, "$lt": 5}},
    {"n": {"$gte": 0}},
    {"n": {"$lt": 1e13}},
    {"name": {"$gt": "b"}},
    {"name": {"$lt": "a"}},
    {"name": {"$gte": "zebra"}},
    {"name": {"$lte": "Zed"}},
    {"name": {"$gt": "a", "$lt": "bc"}},
    {"color": {"$lt": "s"}},
    # a kind mismatch is false, whatever the operator
    {"n": {"$gt": "0"}},
    {"name": {"$gt": 0}},
    {"flag": {"$ne": 0}},
    # membership
    {"color": {"$in": ["red", "blue"]}},
    {"n": {"$in": [1, 2.5, "7"]}},
    {"n": {"$in": [5]}},
    {"flag": {"$in": [True]}},
    {"flag": {"$in": [1]}},
    {"color": {"$nin": ["red"]}},
    {"n": {"$nin": [5, "7"]}},
    {"flag": {"$nin": [True, False]}},
    {"name": {"$nin": [1]}},
    {"x": {"$nin": ["a"]}},
    # several keys, $and, $or, nested
    {"color": "red", "n": 1},
    {"$or": [{"color": "red"}, {"n": {"$gt": 5}}]},
    {"$and": [{"$or": [{"color": "red"}, {"color": "blue"}]}, {"flag": True}]},
    {"$or": [{"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 2.5}}]}, {"name": {"$in": ["Zed"]}}]},
    {"$and": [{"n": {"$ne": 5}}, {"$or": [{"flag": False}, {"color": {"$nin": ["blue"]}}]}]},
    {"$or": [{"missing": 1}, {"name": "a b"}], "n": {"$lte": 0}},
    # dotted keys reach into objects, never into arrays, and never match a literal dotted key
    {"owner.name": "ann"},
    {"owner.age": {"$gte": 30}},
    {"owner.address.city": "Oslo"},
    {"owner.name": {"$ne": "ann"}},
    {"owner.name.first": "ann"},
    {"color.shade": "red"},
    {"a.b.c": 1},
    {"a.b.c": {"$in": ["1"]}},
    {"a.b.c": {"$ne": 2}},
    # array-valued keys never match, not even a negation
    {"color": "blue"},
    {"color": {"$nin": ["green"]}},
]


class SearchConformance(ConformanceBase):
    """Lexical search: ranking, bounds, options, and freshness after writes."""

    @pytest_asyncio.fixture
    async def animals(self, storage: Storage) -> dict[str, Memory]:
        texts = {
            "mat": "the cat sat on the mat",
            "dog": "the dog chased the cat around the garden",
            "quokka": "the quokka smiled at the cat",
            "both": "a cat and a dog share the sofa",
        }
        return {key: await put(storage, text) for key, text in texts.items()}

    async def test_rare_word_ranks_first(
        self, storage: Storage, animals: dict[str, Memory]
    ) -> None:
        hits = await lexical(storage, "quokka cat")
        assert hits[0].memory.id == animals["quokka"].id
        assert {hit.memory.id for hit in hits} == {m.id for m in animals.values()}

    async def test_scores_are_in_unit_range_and_sorted(
        self, storage: Storage, animals: dict[str, Memory]
    ) -> None:
        scores = [hit.score for hit in await lexical(storage, "cat dog sofa")]
        assert len(scores) == 4
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert scores == sorted(scores, reverse=True)

    async def test_limit_keeps_the_best(self, storage: Storage, animals: dict[str, Memory]) -> None:
        every = await lexical(storage, "cat dog")
        top = await lexical(storage, "cat dog", limit=2)
        assert [hit.score for hit in top] == [hit.score for hit in every[:2]]

    async def test_threshold_drops_lower_scores(
        self, storage: Storage, animals: dict[str, Memory]
    ) -> None:
        every = await lexical(storage, "quokka dog")
        scores = sorted({hit.score for hit in every}, reverse=True)
        assert len(scores) >= 2
        middle = (scores[0] + scores[1]) / 2
        kept = await lexical(storage, "quokka dog", threshold=middle)
        assert [h.memory.id for h in kept] == [h.memory.id for h in every if h.score >= middle]

    async def test_threshold_equal_to_a_reported_score_keeps_that_hit(
        self, storage: Storage, animals: dict[str, Memory]
    ) -> None:
        for hit in await lexical(storage, "quokka dog"):
            kept = await lexical(storage, "quokka dog", threshold=hit.score)
            assert hit.memory.id in {h.memory.id for h in kept}

    async def test_no_matching_word_finds_nothing(
        self, storage: Storage, animals: dict[str, Memory]
    ) -> None:
        assert await lexical(storage, "xylophone") == []

    async def test_case_does_not_matter(self, storage: Storage, animals: dict[str, Memory]) -> None:
        hits = await lexical(storage, "QUOKKA")
        assert [hit.memory.id for hit in hits] == [animals["quokka"].id]

    async def test_title_is_searched(self, storage: Storage) -> None:
        memory = await put(storage, "plain words", title="Zanzibar notes")
        assert [hit.memory.id for hit in await lexical(storage, "zanzibar")] == [memory.id]

    async def test_a_hit_carries_the_whole_memory(self, storage: Storage) -> None:
        memory = await put(
            storage,
            "heron by the lake",
            title="Birds",
            metadata={"k": {"v": [1, "x"]}},
            tags=("b",),
        )
        hits = await lexical(storage, "heron")
        assert [hit.memory for hit in hits] == [memory]

    async def test_tags_must_all_be_present(self, storage: Storage) -> None:
        one = await put(storage, "shared word", tags=("a",))
        both = await put(storage, "shared word", tags=("b", "a"))
        await put(storage, "shared word", tags=("b",))
        assert {h.memory.id for h in await lexical(storage, "shared", tags=("a",))} == {
            one.id,
            both.id,
        }
        assert [h.memory.id for h in await lexical(storage, "shared", tags=("a", "b"))] == [both.id]

    async def test_memory_type_filters(self, storage: Storage) -> None:
        await put(storage, "shared word", memory_type="project")
        wanted = await put(storage, "shared word", memory_type="workflow")
        hits = await lexical(storage, "shared", memory_type="workflow")
        assert [hit.memory.id for hit in hits] == [wanted.id]

    async def test_update_reindexes_content_and_title(self, storage: Storage) -> None:
        memory = await put(storage, "ancient walrus", title="old heading")
        patch = MemoryPatch(content="modern narwhal", title="new caption")
        await storage.update(TENANT, memory.id, patch, "2024-01-15T10:05:00Z")
        for gone in ("walrus", "heading"):
            assert await lexical(storage, gone) == []
        for word in ("narwhal", "caption"):
            hits = await lexical(storage, word)
            assert [(h.memory.id, h.memory.version) for h in hits] == [(memory.id, 2)]

    async def test_metadata_update_is_seen_by_filters(self, storage: Storage) -> None:
        memory = await put(storage, "penguin colony", metadata={"stage": "draft"})
        patch = MemoryPatch(metadata={"stage": "final"})
        await storage.update(TENANT, memory.id, patch, "2024-01-15T10:05:00Z")
        assert await lexical(storage, "penguin", filter=parse_filter({"stage": "draft"})) == []
        hits = await lexical(storage, "penguin", filter=parse_filter({"stage": "final"}))
        assert [hit.memory.metadata for hit in hits] == [{"stage": "final"}]

    async def test_deleted_memory_is_not_found(self, storage: Storage) -> None:
        memory = await put(storage, "lonely albatross")
        await storage.delete(TENANT, memory.id)
        assert await lexical(storage, "albatross") == []

    async def test_semantic_search_ranks_by_vector(self, storage: Storage) -> None:
        if not storage.supports_vectors:
            pytest.skip("the backend does not rank by vectors")
        axes = [(1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)]
        memories = [make_memory(f"vector {i}") for i in range(3)]
        for memory, vector in zip(memories, axes, strict=True):
            await storage.create(TENANT, memory, vector)
        query = SearchQuery("vector", mode="semantic", vector=(0.1, 0.9, 0.0, 0.0))
        hits = await storage.search(TENANT, query)
        assert hits[0].memory.id == memories[1].id
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)


class FilterConformance(ConformanceBase):
    """Every filter selects exactly the memories `batchsvc.filters.matches` selects."""

    @pytest_asyncio.fixture
    async def corpus(self, storage: Storage) -> list[Memory]:
        memories = []
        for i, metadata in enumerate(CORPUS_METADATA):
            tags = ("even",) if i % 2 == 0 else ("odd", "even") if i % 3 == 0 else ("odd",)
            memory_type = MEMORY_TYPES[i % 3]
            memories.append(
                await put(
                    storage,
                    f"corpus entry {i}",
                    metadata=metadata,
                    tags=tags,
                    memory_type=memory_type,
                )
            )
        return memories

    async def test_no_filter_finds_the_whole_corpus(
        self, storage: Storage, corpus: list[Memory]
    ) -> None:
        hits = await lexical(storage, "corpus", limit=100)
        assert {hit.memory.id for hit in hits} == {memory.id for memory in corpus}

    @pytest.mark.parametrize("raw", FILTERS, ids=repr)
    async def test_filter_agrees_with_the_reference(
        self, storage: Storage, corpus: list[Memory], raw: Any
    ) -> None:
        node = parse_filter(raw)
        assert node is not None
        hits = await lexical(storage, "corpus", limit=100, filter=node)
        # Compared as corpus indexes, so a failure names the memories in CORPUS_METADATA.
        index = {memory.id: i for i, memory in enumerate(corpus)}
        expected = [i for i, memory in enumerate(corpus) if matches(node, memory.metadata)]
        assert sorted(index[hit.memory.id] for hit in hits) == expected

    @pytest.mark.parametrize("tags", [("even",), ("odd",), ("odd", "even"), ("none",)])
    @pytest.mark.parametrize("memory_type", [None, "context", "project"])
    async def test_tags_and_type_agree_in_search_and_list(
        self, storage: Storage, corpus: list[Memory], tags: tuple[str, ...], memory_type: str | None
    ) -> None:
        expected = {
            m.id
            for m in corpus
            if set(tags) <= set(m.tags) and memory_type in (None, m.memory_type)
        }
        hits = await lexical(storage, "corpus", limit=100, tags=tags, memory_type=memory_type)
        assert {hit.memory.id for hit in hits} == expected
        listed = await listed_ids(storage, tags=tags, memory_type=memory_type, limit=4)
        assert [m.id for m in reversed(corpus) if m.id in expected] == listed
