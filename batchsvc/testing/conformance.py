"""The storage conformance suite: one set of tests every backend passes.

A backend proves itself by subclassing `StorageConformance` and providing the `storage`
fixture, which yields a fresh, entered backend::

    import pytest
    from batchsvc.testing import StorageConformance

    class TestMyStore(StorageConformance):
        @pytest.fixture
        async def storage(self, tmp_path):
            async with MyStore.from_options({"path": str(tmp_path / "db")}) as store:
                yield store

The tests are coroutines; run them with pytest-asyncio (in strict mode, decorate the fixture
with `pytest_asyncio.fixture`). Transaction tests skip themselves where `supports_transactions`
is False, vector tests (`conformance_vectors`, with hand-made vectors: no embedder needed) where
`supports_vectors` is False.
"""

from __future__ import annotations

import asyncio

import pytest

from batchsvc.errors import FieldError
from batchsvc.limits import Limits
from batchsvc.models import MemoryPatch
from batchsvc.storage import Storage
from batchsvc.testing._base import (
    LATER,
    NOW,
    OTHER,
    TENANT,
    ConformanceBase,
    lexical,
    listed_ids,
    make_memory,
    put,
)
from batchsvc.testing.conformance_bulk import BulkConformance, ChangesConformance
from batchsvc.testing.conformance_durable import DurableVectorsConformance
from batchsvc.testing.conformance_search import FilterConformance, SearchConformance
from batchsvc.testing.conformance_vectors import VectorConformance

RICH_METADATA = {
    "source": "import",
    "nested": {"level": {"deeper": {"list": [1, 2.5, "three", True, None, {"k": "v"}]}}},
    "ünïcode ключ": "値",
    "empty": {},
    "zero": 0,
    "negative": -1.25,
}


class Boom(Exception):
    """Raised inside a transaction to make it roll back."""


def needs_transactions(storage: Storage) -> None:
    if not storage.supports_transactions:
        pytest.skip("the backend does not support transactions")


class CrudConformance(ConformanceBase):
    """Create, get, update and delete, with the semantics of `batchsvc.storage`."""

    async def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)
        assert isinstance(storage.supports_transactions, bool)
        assert isinstance(storage.supports_vectors, bool)

    async def test_ping_answers(self, storage: Storage) -> None:
        await storage.ping()

    async def test_from_options_names_an_unknown_option(self, storage: Storage) -> None:
        with pytest.raises(ValueError, match="no_such_option"):
            type(storage).from_options({"no_such_option": 1})

    async def test_create_then_get_round_trips_every_field(self, storage: Storage) -> None:
        memory = make_memory(
            "Grüße, 世界 — emoji 🎉, quotes \"' and a\nnewline\ttab \\ backslash",
            title="Ünïcode tïtle ✓",
            memory_type="knowledge",
            metadata=RICH_METADATA,
            tags=("zeta", "alpha", "Mid tag", "ß"),
        )
        await storage.create(TENANT, memory)
        assert await storage.get(TENANT, memory.id) == memory

    async def test_defaults_round_trip(self, storage: Storage) -> None:
        memory = await put(storage, "x")
        got = await storage.get(TENANT, memory.id)
        assert got == memory
        assert got is not None and got.title is None and got.metadata == {} and got.tags == ()

    async def test_get_of_a_missing_memory_is_none(self, storage: Storage) -> None:
        await put(storage)
        assert await storage.get(TENANT, "mem_0000000000000000") is None

    async def test_update_applies_the_patch(self, storage: Storage) -> None:
        memory = await put(
            storage,
            "before",
            title="old",
            metadata={"keep": 1, "drop": "x", "nested": {"a": 1, "b": 2}, "swap": {"x": 1}},
            tags=("a", "b"),
        )
        patch = MemoryPatch(
            content="after",
            title="new",
            memory_type="workflow",
            metadata={"drop": None, "nested": {"b": None, "c": 3}, "swap": "flat", "add": [1]},
            tags=("c", "a"),
        )
        updated = await storage.update(TENANT, memory.id, patch, LATER)
        assert updated is not None
        assert updated.to_json() == {
            "id": memory.id,
            "content": "after",
            "title": "new",
            "memory_type": "workflow",
            "metadata": {"keep": 1, "nested": {"a": 1, "c": 3}, "swap": "flat", "add": [1]},
            "tags": ["c", "a"],
            "created_at": NOW,
            "updated_at": LATER,
            "version": 2,
        }
        assert await storage.get(TENANT, memory.id) == updated

    async def test_update_leaves_unset_fields_alone(self, storage: Storage) -> None:
        memory = await put(storage, "text", title="t", metadata={"k": 1}, tags=("a",))
        updated = await storage.update(TENANT, memory.id, MemoryPatch(tags=("b",)), LATER)
        assert updated is not None
        assert (updated.content, updated.title, updated.metadata) == ("text", "t", {"k": 1})
        assert (updated.tags, updated.version, updated.updated_at) == (("b",), 2, LATER)

    async def test_update_can_clear_the_title(self, storage: Storage) -> None:
        memory = await put(storage, "text", title="t")
        updated = await storage.update(TENANT, memory.id, MemoryPatch(title=None), LATER)
        assert updated is not None and updated.title is None
        got = await storage.get(TENANT, memory.id)
        assert got is not None and got.title is None

    async def test_every_update_adds_one_to_the_version(self, storage: Storage) -> None:
        memory = await put(storage)
        for version in (2, 3, 4):
            updated = await storage.update(
                TENANT, memory.id, MemoryPatch(content=str(version)), LATER
            )
            assert updated is not None and updated.version == version

    async def test_update_of_a_missing_memory_is_none(self, storage: Storage) -> None:
        patch = MemoryPatch(content="x")
        assert await storage.update(TENANT, "mem_0000000000000000", patch, LATER) is None
        assert await storage.get(TENANT, "mem_0000000000000000") is None

    async def test_update_with_too_large_metadata_raises_and_changes_nothing(
        self, storage: Storage
    ) -> None:
        memory = await put(storage, "unchanged words", metadata={"fill": "x" * 60})
        patch = MemoryPatch(
            content="replacement",
            metadata={"more": "y" * 60},
            limits=Limits(max_metadata_bytes=100),
        )
        with pytest.raises(FieldError) as caught:
            await storage.update(TENANT, memory.id, patch, LATER)
        assert (caught.value.field, caught.value.reason) == ("metadata", "too_large")
        assert await storage.get(TENANT, memory.id) == memory
        assert [hit.memory.id for hit in await lexical(storage, "unchanged")] == [memory.id]
        assert await lexical(storage, "replacement") == []

    async def test_concurrent_updates_lose_nothing(self, storage: Storage) -> None:
        memory = await put(storage)
        patches = [MemoryPatch(metadata={f"k{i}": i}) for i in range(10)]
        await asyncio.gather(*(storage.update(TENANT, memory.id, p, LATER) for p in patches))
        got = await storage.get(TENANT, memory.id)
        assert got is not None
        assert (got.metadata, got.version) == ({f"k{i}": i for i in range(10)}, 11)

    async def test_delete_removes_once(self, storage: Storage) -> None:
        memory = await put(storage)
        kept = await put(storage)
        assert await storage.delete(TENANT, memory.id) is True
        assert await storage.get(TENANT, memory.id) is None
        assert await storage.delete(TENANT, memory.id) is False
        assert await listed_ids(storage) == [kept.id]

    async def test_delete_of_a_missing_memory_is_false(self, storage: Storage) -> None:
        assert await storage.delete(TENANT, "mem_0000000000000000") is False


class ListConformance(ConformanceBase):
    """Listing: newest first by creation, cursor pages with no duplicate and no gap."""

    async def test_an_empty_tenant_lists_nothing(self, storage: Storage) -> None:
        page = await storage.list(TENANT)
        assert (page.items, page.next_cursor) == ([], None)

    async def test_newest_first_in_pages(self, storage: Storage) -> None:
        memories = [await put(storage, f"m{i}") for i in range(7)]
        pages, cursor = [], None
        while True:
            page = await storage.list(TENANT, limit=3, cursor=cursor)
            pages.append(page.items)
            if (cursor := page.next_cursor) is None:
                break
        assert [len(items) for items in pages] == [3, 3, 1]
        assert [m for items in pages for m in items] == memories[::-1]

    async def test_the_last_page_has_no_cursor(self, storage: Storage) -> None:
        memories = [await put(storage, f"m{i}") for i in range(6)]
        first = await storage.list(TENANT, limit=3)
        assert first.next_cursor is not None
        second = await storage.list(TENANT, limit=3, cursor=first.next_cursor)
        assert (second.items, second.next_cursor) == (memories[2::-1], None)
        assert (await storage.list(TENANT, limit=6)).next_cursor is None

    async def test_paging_survives_writes_between_pages(self, storage: Storage) -> None:
        memories = [await put(storage, f"m{i}") for i in range(5)]
        first = await storage.list(TENANT, limit=2)
        assert first.items == memories[:2:-1]
        await put(storage, "newer")
        await storage.delete(TENANT, memories[3].id)
        rest = await storage.list(TENANT, limit=10, cursor=first.next_cursor)
        assert rest.items == memories[2::-1]

    async def test_an_update_keeps_the_creation_order(self, storage: Storage) -> None:
        memories = [await put(storage, f"m{i}") for i in range(3)]
        await storage.update(TENANT, memories[0].id, MemoryPatch(content="changed"), LATER)
        assert await listed_ids(storage) == [m.id for m in reversed(memories)]

    @pytest.mark.parametrize("cursor", ["not-a-cursor", "", "🙂", "-1"])
    async def test_an_invalid_cursor_is_a_value_error(self, storage: Storage, cursor: str) -> None:
        await put(storage)
        with pytest.raises(ValueError):
            await storage.list(TENANT, cursor=cursor)


class TenantConformance(ConformanceBase):
    """Tenants are walls: to a stranger our memories do not exist."""

    async def test_a_stranger_sees_nothing_and_changes_nothing(self, storage: Storage) -> None:
        memory = await put(storage, "private walrus", tags=("t",))
        assert await storage.get(OTHER, memory.id) is None
        assert await storage.update(OTHER, memory.id, MemoryPatch(content="x"), LATER) is None
        assert await storage.delete(OTHER, memory.id) is False
        assert await lexical(storage, "walrus", tenant=OTHER) == []
        assert (await storage.list(OTHER, tags=("t",))).items == []
        assert await storage.get(TENANT, memory.id) == memory
        assert [hit.memory for hit in await lexical(storage, "walrus")] == [memory]

    async def test_a_strangers_writes_stay_its_own(self, storage: Storage) -> None:
        ours = await put(storage, "shared walrus", tags=("t",))
        theirs = [await put(storage, "shared walrus", OTHER, tags=("t",)) for _ in range(2)]
        await storage.update(OTHER, theirs[0].id, MemoryPatch(content="shared seal"), LATER)
        await storage.delete(OTHER, theirs[1].id)
        assert await listed_ids(storage, tags=("t",)) == [ours.id]
        assert [hit.memory.id for hit in await lexical(storage, "shared")] == [ours.id]
        assert await listed_ids(storage, OTHER) == [theirs[0].id]
        assert await storage.get(TENANT, theirs[0].id) is None


class TransactionConformance(ConformanceBase):
    """All or nothing, invisible to others until the commit; skipped where unsupported."""

    async def test_without_support_a_transaction_is_refused(self, storage: Storage) -> None:
        if storage.supports_transactions:
            pytest.skip("the backend supports transactions")
        with pytest.raises(NotImplementedError):
            async with storage.transaction(TENANT):
                pass

    async def test_a_clean_transaction_commits(self, storage: Storage) -> None:
        needs_transactions(storage)
        changed, removed = await put(storage, "before"), await put(storage)
        async with storage.transaction(TENANT) as tx:
            created = await put(tx, "fresh heron")
            assert await tx.get(TENANT, created.id) == created
            assert [h.memory.id for h in await lexical(tx, "heron")] == [created.id]
            await tx.update(TENANT, changed.id, MemoryPatch(content="after"), LATER)
            assert await tx.delete(TENANT, removed.id) is True
            assert await tx.get(TENANT, removed.id) is None
        assert await storage.get(TENANT, created.id) == created
        after = await storage.get(TENANT, changed.id)
        assert after is not None and (after.content, after.version) == ("after", 2)
        assert await storage.get(TENANT, removed.id) is None
        assert await listed_ids(storage) == [created.id, changed.id]

    async def test_a_failed_transaction_rolls_everything_back(self, storage: Storage) -> None:
        needs_transactions(storage)
        kept = await put(storage, "steady otter")
        changed = await put(storage, "original beaver", metadata={"v": 1}, tags=("x",))
        removed = await put(storage, "doomed badger", title="Badger", metadata={"n": {"d": 2}})
        before = await storage.list(TENANT)
        with pytest.raises(Boom):
            async with storage.transaction(TENANT) as tx:
                await put(tx, "phantom lynx")
                patch = MemoryPatch(content="mutant ferret", metadata={"v": None}, tags=())
                await tx.update(TENANT, changed.id, patch, LATER)
                await tx.update(TENANT, changed.id, MemoryPatch(title="again"), LATER)
                await tx.delete(TENANT, removed.id)
                await tx.delete(TENANT, kept.id)
                raise Boom
        assert await storage.list(TENANT) == before
        for memory, word in ((kept, "otter"), (changed, "beaver"), (removed, "badger")):
            assert await storage.get(TENANT, memory.id) == memory
            assert [hit.memory for hit in await lexical(storage, word)] == [memory]
        for word in ("phantom", "mutant", "ferret", "again"):
            assert await lexical(storage, word) == []

    async def test_others_do_not_see_an_uncommitted_transaction(self, storage: Storage) -> None:
        needs_transactions(storage)
        changed = await put(storage, "first draft")
        async with storage.transaction(TENANT) as tx:
            created = await put(tx, "secret plan")
            await tx.update(TENANT, changed.id, MemoryPatch(content="second draft"), LATER)
            peeks = [
                asyncio.create_task(storage.get(TENANT, created.id)),
                asyncio.create_task(storage.get(TENANT, changed.id)),
                asyncio.create_task(lexical(storage, "secret second")),
            ]
            done, _ = await asyncio.wait(peeks, timeout=0.2)
            # A reader may wait for the commit; one that answered before it saw the old state.
            old: list[object] = [None, changed, []]
            for task, expected in zip(peeks, old, strict=True):
                if task in done:
                    assert task.result() == expected
        await asyncio.gather(*peeks)
        got = await storage.get(TENANT, changed.id)
        assert got is not None and got.content == "second draft"
        assert await storage.get(TENANT, created.id) == created

    async def test_the_store_works_after_a_rolled_back_transaction(self, storage: Storage) -> None:
        needs_transactions(storage)
        with pytest.raises(Boom):
            async with storage.transaction(TENANT) as tx:
                await put(tx)
                raise Boom
        memory = await put(storage)
        async with storage.transaction(TENANT) as tx:
            assert await tx.get(TENANT, memory.id) == memory
        assert await listed_ids(storage) == [memory.id]

    async def test_a_transaction_serves_only_its_tenant(self, storage: Storage) -> None:
        needs_transactions(storage)
        theirs = await put(storage, "their memory", tenant=OTHER)
        async with storage.transaction(TENANT) as tx:
            with pytest.raises(ValueError, match="only the tenant it was opened for"):
                await put(tx, "smuggled", tenant=OTHER)
            with pytest.raises(ValueError, match="only the tenant it was opened for"):
                await tx.get(OTHER, theirs.id)
            with pytest.raises(ValueError, match="only the tenant it was opened for"):
                await tx.delete(OTHER, theirs.id)
        assert await storage.get(OTHER, theirs.id) == theirs
        assert await listed_ids(storage, OTHER) == [theirs.id]


class StorageConformance(
    CrudConformance,
    ListConformance,
    TenantConformance,
    TransactionConformance,
    SearchConformance,
    FilterConformance,
    VectorConformance,
    BulkConformance,
    ChangesConformance,
    DurableVectorsConformance,
):
    """Every conformance test; subclass it and provide the `storage` fixture."""
