"""Which model made the stored vectors (`batchsvc.model_stamp`): a SQLite file remembers it, the
service refuses another embedder's queries against them, and `reembed` replaces them all.

Two real embedders whose vectors do not compare: wordllama at 256 dimensions and the same model
truncated to 64 (another space, and another size)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder
from batchsvc_backends.memory import MemoryStore
from batchsvc_backends.sqlite import settings as sqlite_settings
from batchsvc_backends.sqlite.schema import SCHEMA_VERSION
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.embedding import embedding_text
from batchsvc.http.app import create_app
from batchsvc.model_stamp import VectorsMismatch, check_vectors, stamp_of
from batchsvc.models import SearchQuery
from batchsvc.storage import Vector, unfinished_reembed
from batchsvc.testing import OTHER, TENANT, make_memory
from tests.helpers.embedders import loaded_wordllama
from tests.helpers.service import make_config

TEXTS = [
    "the walrus sleeps on the ice floe",
    "quarterly tax forms are due in april",
    "a recipe for sourdough bread with rye",
    "the train to lisbon leaves at nine",
    "fixing a leaking kitchen tap",
    "notes on the history of the violin",
    "how to prune apple trees in winter",
]


@pytest.fixture(scope="module")
def wide() -> WordLlamaEmbedder:
    return loaded_wordllama(256)


@pytest.fixture(scope="module")
def narrow() -> WordLlamaEmbedder:
    return loaded_wordllama(64)


async def fill(store: SQLiteStore, embedder: WordLlamaEmbedder, tenant: str = TENANT) -> list[str]:
    """Store TEXTS with the embedder's vectors; their ids, in TEXTS order."""
    memories = [make_memory(text, title="t" if i % 2 else None) for i, text in enumerate(TEXTS)]
    vectors = await embedder.embed([embedding_text(m.title, m.content) for m in memories])
    await store.create_many(tenant, list(zip(memories, vectors, strict=True)))
    return [m.id for m in memories]


async def nearest(store: SQLiteStore, embedder: WordLlamaEmbedder, text: str, tenant: str) -> str:
    [vector] = await embedder.embed([text])
    hits = await store.search(tenant, SearchQuery(text, mode="semantic", vector=vector))
    return hits[0].memory.id


class TestCheck:
    async def test_a_new_store_takes_the_embedders_stamp(
        self, store: SQLiteStore, wide: WordLlamaEmbedder
    ) -> None:
        assert await store.vectors_stamp() is None
        await check_vectors(store, wide)
        assert await store.vectors_stamp() == stamp_of(wide) == "wordllama l2_supercat 256"
        await check_vectors(store, wide)  # the same embedder again: fine

    async def test_another_embedder_is_refused_saying_what_to_do(
        self, store: SQLiteStore, wide: WordLlamaEmbedder, narrow: WordLlamaEmbedder
    ) -> None:
        await check_vectors(store, wide)
        await fill(store, wide)
        with pytest.raises(VectorsMismatch) as refused:
            await check_vectors(store, narrow)
        message = str(refused.value)
        assert stamp_of(wide) in message and stamp_of(narrow) in message
        assert "batchsvc reembed" in message
        assert await store.vectors_stamp() == stamp_of(wide)

    async def test_a_store_without_a_stamp_is_judged_by_its_vector_sizes(
        self, store: SQLiteStore, wide: WordLlamaEmbedder, narrow: WordLlamaEmbedder
    ) -> None:
        """As a file written before stamps existed: vectors, and no stamp."""
        await fill(store, wide)
        assert await store.vectors_stamp() is None
        assert await store.vector_sizes() == {256}
        with pytest.raises(VectorsMismatch, match="256 dimensions"):
            await check_vectors(store, narrow)
        assert await store.vectors_stamp() is None
        await check_vectors(store, wide)
        assert await store.vectors_stamp() == stamp_of(wide)

    async def test_a_version_2_file_is_migrated_and_judged_by_its_sizes(
        self, tmp_path: Path, wide: WordLlamaEmbedder, narrow: WordLlamaEmbedder
    ) -> None:
        path = tmp_path / "old.db"
        async with SQLiteStore(str(path)) as store:
            ids = await fill(store, wide)
        with sqlite3.connect(path) as conn:  # back to version 2: no settings table
            conn.execute("DROP TABLE settings")
            conn.execute("PRAGMA user_version = 2")
        async with SQLiteStore(str(path)) as store:
            assert await store.vectors_stamp() is None
            with pytest.raises(VectorsMismatch):
                await check_vectors(store, narrow)
            await check_vectors(store, wide)
            assert await store.vectors_stamp() == stamp_of(wide)
            assert await nearest(store, wide, "a loaf of rye bread", TENANT) == ids[2]
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

    async def test_a_stamped_store_without_vectors_takes_another_embedder(
        self, store: SQLiteStore, wide: WordLlamaEmbedder, narrow: WordLlamaEmbedder
    ) -> None:
        """Nothing can mismatch: the memories have no vectors (stored with embedder none, or
        the vectors were deleted with their memories)."""
        await check_vectors(store, wide)
        await store.create(TENANT, make_memory("no vector"))
        await check_vectors(store, narrow)
        assert await store.vectors_stamp() == stamp_of(narrow)

    async def test_a_backend_whose_vectors_die_with_it_is_not_checked(
        self, narrow: WordLlamaEmbedder
    ) -> None:
        async with MemoryStore() as memory:
            await check_vectors(memory, narrow)


class TestReembed:
    async def test_every_memory_of_every_tenant_gets_the_new_vector(
        self,
        store: SQLiteStore,
        wide: WordLlamaEmbedder,
        narrow: WordLlamaEmbedder,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(sqlite_settings, "REEMBED_CHUNK", 3)  # chunks end mid-tenant
        await check_vectors(store, narrow)
        ours, theirs = await fill(store, narrow), await fill(store, narrow, OTHER)
        assert await nearest(store, narrow, "a loaf of rye bread", TENANT) == ours[2]
        calls: list[int] = []

        async def embed(texts: list[str]) -> list[Vector]:
            calls.append(len(texts))
            return await wide.embed(texts)

        assert await store.reembed(embed, stamp_of(wide)) == 2 * len(TEXTS)
        assert calls == [3, 3, 3, 3, 2]
        assert await store.vector_sizes() == {256}
        assert await store.vectors_stamp() == stamp_of(wide)
        await check_vectors(store, wide)
        # The indexes were read again: searches rank by the new vectors, tenants apart.
        assert await nearest(store, wide, "a loaf of rye bread", TENANT) == ours[2]
        assert await nearest(store, wide, "pruning fruit trees", OTHER) == theirs[6]
        assert [m.content for m in (await store.list(TENANT)).items] == TEXTS[::-1]

    async def test_a_reembed_stopped_part_way_is_marked_unfinished_and_can_finish(
        self,
        store: SQLiteStore,
        wide: WordLlamaEmbedder,
        narrow: WordLlamaEmbedder,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(sqlite_settings, "REEMBED_CHUNK", 4)
        await check_vectors(store, narrow)
        await fill(store, narrow)
        calls = 0

        async def failing_second(texts: list[str]) -> list[Vector]:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("the embedder fell over")
            return await wide.embed(texts)

        with pytest.raises(RuntimeError):
            await store.reembed(failing_second, stamp_of(wide))
        assert await store.vector_sizes() == {64, 256}  # the first chunk stands, whole
        # Two models' vectors: neither embedder may serve them (found in review: the old
        # stamp used to stay, and the old embedder started on the mixed file).
        assert await store.vectors_stamp() == unfinished_reembed(stamp_of(wide))
        for embedder in (narrow, wide):
            with pytest.raises(VectorsMismatch, match="stopped part way"):
                await check_vectors(store, embedder)
        assert await store.reembed(wide.embed, stamp_of(wide)) == len(TEXTS)
        assert await store.vector_sizes() == {256}
        await check_vectors(store, wide)


class TestService:
    async def test_the_service_will_not_start_on_another_models_vectors(
        self, tmp_path: Path, wide: WordLlamaEmbedder
    ) -> None:
        path = tmp_path / "memories.db"
        async with SQLiteStore(str(path)) as store:
            await check_vectors(store, wide)
            await fill(store, wide)
        config = make_config(tmp_path / "keys.json")
        # An embedder of its own: the app enters and leaves it.
        app = create_app(config, storage=SQLiteStore(str(path)), embedder=WordLlamaEmbedder(64))
        with pytest.raises(VectorsMismatch):
            async with TestClient(TestServer(app)):
                pass
