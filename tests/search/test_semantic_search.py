"""Semantic and hybrid search through the service, with the real wordllama embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.batch import attempts
from batchsvc.search.lexical import tokenize
from batchsvc.storage import Vector
from tests.helpers.faults import FaultyStorage
from tests.helpers.service import Service, ServiceFactory

CORPUS = [
    "The invoice was paid late because the bank transfer failed",
    "Our cat sleeps on the windowsill every afternoon",
    "The quarterly revenue grew by twelve percent",
    "Remember to water the tomato plants twice a week",
    "The password reset email never arrived for user 4711",
    "Zephyrine is the codename of the new billing project",
    "The doctor prescribed antibiotics for the infection",
]
#: Queries that share no word with the memory (index into CORPUS) they should find.
PARAPHRASES = [
    ("payment delayed due to wire problem", 0),
    ("feline napping by a window", 1),
    ("sales increased this quarter", 2),
    ("gardening vegetables irrigation", 3),
    ("login recovery message missing", 4),
    ("physician gave medicine", 6),
]


class CountingEmbedder:
    """The real wordllama embedder, with its calls counted and failures injectable."""

    def __init__(self) -> None:
        self.inner = WordLlamaEmbedder()
        self.dimensions = self.inner.dimensions
        self.calls: list[int] = []
        self.failures = 0

    @classmethod
    def from_options(cls, options: Any) -> Self:
        return cls()

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls.append(len(texts))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected embedder fault")
        return await self.inner.embed(texts)


@pytest.fixture
def counting() -> CountingEmbedder:
    return CountingEmbedder()


class LexicalOnlySQLite(SQLiteStore):
    """A backend that stores no vectors: SQLite as it was before it gained them."""

    supports_vectors = False


@pytest.fixture(params=["memory", "sqlite"])
async def semantic_service(
    service_factory: ServiceFactory,
    counting: CountingEmbedder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Service:
    """The service with the real embedder, on each backend that stores vectors."""
    if request.param == "sqlite":
        store = SQLiteStore.from_options({"path": str(tmp_path / "semantic.db")})
        return await service_factory(storage=store, embedder=counting)
    return await service_factory(embedder=counting)


async def seed(service: Service) -> list[str]:
    status, body = await service.batch(
        [{"type": "create", "data": {"content": text}} for text in CORPUS]
    )
    assert status == 200, body
    return [op["result"]["id"] for op in body["data"]["operations"]]


async def search(service: Service, query: str, **options: Any) -> list[dict[str, Any]]:
    status, body = await service.batch([{"type": "search", "query": query, "options": options}])
    assert status == 200, body
    results: list[dict[str, Any]] = body["data"]["operations"][0]["result"]["results"]
    return results


class TestEmbeddingInBatches:
    """A batch's texts go to the embedder in one call, off the event loop."""

    async def test_a_batch_of_100_creates_embeds_once(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        creates = [{"type": "create", "data": {"content": f"memory {i}"}} for i in range(100)]
        status, body = await semantic_service.batch(creates)
        assert (status, body["data"]["processed"]) == (200, 100)
        assert counting.calls == [100]

    async def test_creates_and_searches_share_the_one_call(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        operations: list[dict[str, Any]] = [
            {"type": "create", "data": {"content": f"note {i}", "title": "t"}} for i in range(3)
        ]
        operations += [
            {"type": "search", "query": "note", "options": {"mode": mode}}
            for mode in ("semantic", "hybrid", "lexical")
        ]
        operations.append({"type": "create", "data": {"content": ""}})  # invalid: not embedded
        status, body = await semantic_service.batch(operations, {"continue_on_error": True})
        assert status == 207, body
        assert counting.calls == [5]

    async def test_validate_only_embeds_nothing(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        status, _ = await semantic_service.batch(
            [{"type": "create", "data": {"content": "x"}}], {"validate_only": True}
        )
        assert (status, counting.calls) == (200, [])

    async def test_an_embedder_fault_fails_only_the_operations_that_needed_it(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        [first, *_] = await seed(semantic_service)
        counting.failures = 1
        status, body = await semantic_service.batch(
            [
                {"type": "create", "data": {"content": "lost"}},
                {"type": "read", "id": first},
                {"type": "search", "query": "invoice", "options": {"mode": "lexical"}},
                {"type": "search", "query": "invoice", "options": {"mode": "hybrid"}},
            ],
            {"continue_on_error": True},
        )
        assert status == 207
        ops = body["data"]["operations"]
        assert [op["status"] for op in ops] == ["failed", "success", "success", "failed"]
        assert {ops[i]["error"]["code"] for i in (0, 3)} == {"BACKEND_UNAVAILABLE"}
        assert (await semantic_service.call("GET", "/api/v1/memories"))[1]["data"]["items"][0][
            "content"
        ] != "lost"


class TestSemanticAndHybrid:
    """Meaning finds paraphrases; hybrid keeps exact keyword hits first."""

    @pytest.mark.parametrize(("query", "answer"), PARAPHRASES)
    async def test_semantic_finds_a_paraphrase_that_shares_no_word(
        self, semantic_service: Service, query: str, answer: int
    ) -> None:
        ids = await seed(semantic_service)
        assert not set(tokenize(query)) & set(tokenize(CORPUS[answer]))
        lexical = await search(semantic_service, query, mode="lexical")
        assert ids[answer] not in {hit["id"] for hit in lexical}
        hits = await search(semantic_service, query, mode="semantic", limit=3)
        assert hits[0]["id"] == ids[answer]
        assert all(0.0 <= hit["score"] <= 1.0 for hit in hits)

    @pytest.mark.parametrize(("query", "answer"), [("Zephyrine", 5), ("4711", 4)])
    async def test_hybrid_keeps_an_exact_rare_keyword_first(
        self, semantic_service: Service, query: str, answer: int
    ) -> None:
        ids = await seed(semantic_service)
        hits = await search(semantic_service, query)  # hybrid is the default mode here
        assert hits[0]["id"] == ids[answer]
        assert hits[0]["score"] > hits[1]["score"]

    async def test_hybrid_also_finds_paraphrases(self, semantic_service: Service) -> None:
        ids = await seed(semantic_service)
        for query, answer in PARAPHRASES:
            assert (await search(semantic_service, query, limit=1))[0]["id"] == ids[answer]

    async def test_hybrid_applies_filters_tags_type_and_threshold(
        self, semantic_service: Service
    ) -> None:
        ids = await seed(semantic_service)
        tagged = await semantic_service.create(
            CORPUS[6], tags=["medical"], memory_type="personal", metadata={"year": 2024}
        )
        query = "physician gave medicine"
        for options in (
            {"tags": ["medical"]},
            {"memory_type": "personal"},
            {"filters": {"year": {"$gte": 2024}}},
        ):
            assert [hit["id"] for hit in await search(semantic_service, query, **options)] == [
                tagged
            ]
        top = await search(semantic_service, query, limit=2)
        assert {hit["id"] for hit in top} == {tagged, ids[6]}
        kept = await search(semantic_service, query, threshold=top[1]["score"])
        assert {hit["id"] for hit in kept} == {tagged, ids[6]}

    async def test_an_update_re_embeds_the_new_text(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        ids = await seed(semantic_service)
        counting.calls.clear()
        status, _ = await semantic_service.batch(
            [{"type": "update", "id": ids[1], "data": {"content": "Antibiotics cure infections"}}]
        )
        assert (status, counting.calls) == (200, [1])
        hits = await search(semantic_service, "physician gave medicine", mode="semantic", limit=2)
        assert {hit["id"] for hit in hits} == {ids[1], ids[6]}
        hits = await search(semantic_service, "feline napping by a window", mode="semantic")
        assert hits[0]["id"] != ids[1]
        counting.calls.clear()
        await semantic_service.batch(
            [{"type": "update", "id": ids[1], "data": {"metadata": {"k": 1}}}]
        )
        assert counting.calls == []  # a metadata change keeps the vector

    async def test_a_title_change_re_embeds_title_and_content(
        self, semantic_service: Service, counting: CountingEmbedder
    ) -> None:
        ids = await seed(semantic_service)

        async def score() -> float:
            hits = await search(semantic_service, "kitten veterinarian", mode="semantic", limit=9)
            return float(next(hit["score"] for hit in hits if hit["id"] == ids[2]))

        before = await score()
        counting.calls.clear()
        await semantic_service.batch(
            [{"type": "update", "id": ids[2], "data": {"title": "Veterinary clinic for cats"}}]
        )
        assert counting.calls == [1]
        assert await score() > before + 0.1


class TestAtomicAndWithoutEmbedder:
    """Rolled-back batches leave no vectors; no embedder (or no vector store) means lexical."""

    async def test_a_rolled_back_batch_leaves_no_vector(self, semantic_service: Service) -> None:
        ids = await seed(semantic_service)
        status, body = await semantic_service.batch(
            [
                {"type": "create", "data": {"content": "Airline tickets and hotel booked"}},
                {"type": "update", "id": ids[1], "data": {"content": "Antibiotics prescribed"}},
                {"type": "read", "id": "mem_0000000000000000"},
            ],
            {"atomic": True},
        )
        assert (status, body["error"]["code"]) == (422, "ATOMIC_BATCH_FAILED")
        hits = await search(semantic_service, "travel reservations", mode="semantic")
        assert {hit["id"] for hit in hits} == set(ids)
        feline = await search(semantic_service, "feline napping by a window", mode="semantic")
        assert feline[0]["id"] == ids[1]

    @pytest.mark.parametrize("mode", ["semantic", "hybrid"])
    async def test_without_an_embedder_the_mode_is_refused(
        self, service: Service, mode: str
    ) -> None:
        status, body = await service.batch(
            [{"type": "search", "query": "x", "options": {"mode": mode}}]
        )
        assert status == 207
        error = body["data"]["operations"][0]["error"]
        assert (error["code"], error["details"]) == (
            "VALIDATION_ERROR",
            {"field": "options.mode", "reason": "embedder_not_configured"},
        )

    async def test_a_backend_without_vectors_stays_lexical(
        self, service_factory: ServiceFactory, counting: CountingEmbedder, tmp_path: Any
    ) -> None:
        store = LexicalOnlySQLite.from_options({"path": str(tmp_path / "m.db")})
        service = await service_factory(storage=store, embedder=counting)
        await service.create("the quokka smiled")
        assert [hit["content"] for hit in await search(service, "quokka")] == ["the quokka smiled"]
        status, body = await service.batch(
            [{"type": "search", "query": "x", "options": {"mode": "semantic"}}]
        )
        assert status == 207
        assert body["data"]["operations"][0]["error"]["details"]["reason"] == (
            "embedder_not_configured"
        )
        assert counting.calls == []


class TestConcurrentTextChanges:
    """An update embeds the text it reads; if another batch changes the title or content before
    the update lands, the backend refuses it and it is embedded again (`attempts._update`)."""

    async def race(
        self, service_factory: ServiceFactory, counting: CountingEmbedder
    ) -> tuple[FaultyStorage, str, list[tuple[int, dict[str, Any]]]]:
        """Batch A changes the content; its update call stalls while batch B changes the
        title. Returns the storage, the memory's id and both responses."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty, embedder=counting)
        memory_id = await service.create("old content", title="Old title")
        faulty.delay("update", 0.2, times=1)  # A's first update call only
        content = [{"type": "update", "id": memory_id, "data": {"content": "new content"}}]
        title = [{"type": "update", "id": memory_id, "data": {"title": "New title"}}]
        first = asyncio.create_task(service.batch(content))
        await asyncio.sleep(0.05)
        second = await service.batch(title)
        return faulty, memory_id, [await first, second]

    async def test_the_vector_is_of_the_text_the_memory_ends_with(
        self, service_factory: ServiceFactory, counting: CountingEmbedder
    ) -> None:
        faulty, memory_id, responses = await self.race(service_factory, counting)
        assert [status for status, _ in responses] == [200, 200]
        memory = await faulty.store.get("acme", memory_id)
        assert memory is not None and (memory.title, memory.content) == ("New title", "new content")
        assert faulty.calls["update"] == 3  # A refused once, then again; B once
        stored = faulty.store._tenant("acme").vectors.get(memory_id)
        [expected] = await counting.inner.embed(["New title\nnew content"])
        [stale] = await counting.inner.embed(["Old title\nnew content"])
        assert stored == pytest.approx(expected, abs=1e-6)
        assert stored != pytest.approx(stale, abs=1e-3)

    async def test_past_its_tries_an_update_lands_without_a_vector(
        self,
        service_factory: ServiceFactory,
        counting: CountingEmbedder,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(attempts, "TEXT_TRIES", 1)
        faulty, memory_id, responses = await self.race(service_factory, counting)
        assert [status for status, _ in responses] == [200, 200]
        memory = await faulty.store.get("acme", memory_id)
        assert memory is not None and (memory.title, memory.content) == ("New title", "new content")
        assert faulty.store._tenant("acme").vectors.get(memory_id) is None
