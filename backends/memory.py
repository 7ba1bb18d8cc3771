"""The in-memory backend: the reference implementation of the storage contract.

Nothing survives a restart. Each tenant has its own lock; writes and reads take it, and a
transaction holds it for its whole life, so nobody sees a change before it commits. Every
method finishes its change without awaiting anything after taking the lock, which makes
cancellation trivially truthful. Vectors sit in a NumPy matrix per tenant (exact cosine).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

from batchsvc.embedding import embedding_text
from batchsvc.filters import matches
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.paging import cut_page, read_cursor
from batchsvc.plugins.options import read_options
from batchsvc.search.lexical import LexicalIndex
from batchsvc.search.ranking import ranked, select
from batchsvc.search.vectors import VectorIndex, refuse_other_sizes
from batchsvc.storage import (
    MemoryOps,
    Outcome,
    Page,
    PlannedChange,
    PlannedDelete,
    ToCreate,
    Vector,
    apply_in_order,
    refuse_changed_text,
    refuse_other_tenant,
)
from batchsvc.storage_proxy import OpsProxy

T = TypeVar("T")

#: What a transaction must restore for one write: the id, the memory and vector before it.
Undo = list[tuple[str, Memory | None, Vector | None]]


def _text(memory: Memory) -> str:
    return embedding_text(memory.title, memory.content)


class _Tenant:
    def __init__(self) -> None:
        self.memories: dict[str, Memory] = {}
        self.index = LexicalIndex()
        self.vectors = VectorIndex()
        self.lock = asyncio.Lock()

    def put(self, memory: Memory, vector: Vector | None = None) -> None:
        """Store `memory`; `vector` replaces its embedding. A text change without a vector
        drops the old one, which would rank the memory by words it no longer has: the memory
        is then found by lexical search only, like one stored while no embedder ran."""
        if vector is not None:
            self.vectors.add(memory.id, vector)  # first: a wrong dimension changes nothing
        old = self.memories.get(memory.id)
        self.memories[memory.id] = memory
        if old is None or _text(old) != _text(memory):
            self.index.add(memory.id, _text(memory))
            if vector is None:
                self.vectors.remove(memory.id)

    def drop(self, memory_id: str) -> None:
        del self.memories[memory_id]
        self.index.remove(memory_id)
        self.vectors.remove(memory_id)

    def restore(self, memory_id: str, memory: Memory | None, vector: Vector | None) -> None:
        """Put back exactly what was there before a write: the memory and its vector."""
        if memory is None:
            self.drop(memory_id)
            return
        self.put(memory, vector)
        if vector is None:
            self.vectors.remove(memory_id)

    def passes(self, memory: Memory, tags: tuple[str, ...], memory_type: str | None) -> bool:
        if memory_type is not None and memory.memory_type != memory_type:
            return False
        return all(tag in memory.tags for tag in tags)


class _Ops:
    """The operations on one tenant's data; `undo` records what a transaction must restore."""

    def __init__(self, store: MemoryStore, undo: Undo | None):
        self._store = store
        self._undo = undo

    def _data(self, tenant: str) -> _Tenant:
        return self._store._tenant(tenant)

    def _remember(self, data: _Tenant, memory_id: str) -> None:
        if self._undo is not None:
            self._undo.append(
                (memory_id, data.memories.get(memory_id), data.vectors.get(memory_id))
            )

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        data = self._data(tenant)
        self._remember(data, memory.id)
        data.put(memory, vector)

    async def create_many(self, tenant: str, items: Sequence[ToCreate]) -> None:
        data = self._data(tenant)
        # All or none: the one way `put` can fail, a vector of another size, is ruled out first.
        refuse_other_sizes(data.vectors.dimensions, (v for _, v in items if v is not None))
        for memory, vector in items:
            self._remember(data, memory.id)
            data.put(memory, vector)

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return self._data(tenant).memories.get(memory_id)

    async def get_many(self, tenant: str, memory_ids: Sequence[str]) -> dict[str, Memory]:
        memories = self._data(tenant).memories
        return {i: memories[i] for i in memory_ids if i in memories}

    async def change_many(
        self, tenant: str, changes: Sequence[PlannedChange], *, stop_at_miss: bool
    ) -> list[Outcome]:
        data = self._data(tenant)
        undo: Undo = []
        ops = _Ops(self._store, undo)  # records what each change replaces

        async def apply_one(change: PlannedChange) -> Outcome:
            if isinstance(change, PlannedDelete):
                return await _Ops.delete(ops, tenant, change.memory_id)
            patch, now, vector = change.patch, change.now, change.vector
            return await _Ops.update(
                ops, tenant, change.memory_id, patch, now, vector, change.vector_text
            )

        try:
            outcomes = await apply_in_order(changes, apply_one, stop_at_miss=stop_at_miss)
        except BaseException:
            for memory_id, previous, vector in reversed(undo):  # none, or all
                data.restore(memory_id, previous, vector)
            raise
        if self._undo is not None:  # in a transaction: its rollback undoes these too
            self._undo.extend(undo)
        return outcomes

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        data = self._data(tenant)
        current = data.memories.get(memory_id)
        if current is None:
            return None
        updated = patch.apply(current, now)
        refuse_changed_text(updated, vector, vector_text)
        self._remember(data, memory_id)
        data.put(updated, vector)
        return updated

    async def delete(self, tenant: str, memory_id: str) -> bool:
        data = self._data(tenant)
        if memory_id not in data.memories:
            return False
        self._remember(data, memory_id)
        data.drop(memory_id)
        return True

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        data = self._data(tenant)

        def accept(memory_id: str) -> Memory | None:
            memory = data.memories[memory_id]
            if not data.passes(memory, query.tags, query.memory_type):
                return None
            if query.filter is not None and not matches(query.filter, memory.metadata):
                return None
            return memory

        return select(query, ranked(query, data.index, data.vectors), accept)

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        data = self._data(tenant)
        before = read_cursor(cursor)
        ordered = sorted(data.memories.values(), key=lambda m: m.id, reverse=True)
        found = [
            m
            for m in ordered
            if (before is None or m.id < before) and data.passes(m, tags, memory_type)
        ]
        return cut_page(found, limit)


class _TenantLocked(OpsProxy):
    """Outside a transaction: the operations of `inner`, each call holding its tenant's lock,
    so that it waits for an open transaction. The lock is taken in the one hook of
    `batchsvc.storage_proxy`, so every operation (and the bulk ones) takes it alike."""

    def __init__(self, inner: MemoryOps, lock_of: Callable[[str], asyncio.Lock]) -> None:
        super().__init__(inner)
        self._lock_of = lock_of

    async def _forward(
        self, method: str, tenant: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        assert tenant is not None, method  # every operation names its tenant
        async with self._lock_of(tenant):
            return await call()


class _TenantGuard(_Ops):
    """A transaction's ops: bound to one tenant, so a stray call cannot touch another."""

    def __init__(self, store: MemoryStore, undo: Undo, tenant: str):
        super().__init__(store, undo)
        self._tenant_name = tenant

    def _data(self, tenant: str) -> _Tenant:
        refuse_other_tenant(self._tenant_name, tenant)
        return super()._data(tenant)


class MemoryStore(_TenantLocked):
    """Memories in dictionaries, with a BM25 index and a vector index per tenant."""

    supports_transactions = True
    supports_vectors = True

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        super().__init__(_Ops(self, None), lambda tenant: self._tenant(tenant).lock)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        read_options(options, {}, "the memory backend")
        return cls()

    def _tenant(self, tenant: str) -> _Tenant:
        data = self._tenants.get(tenant)
        if data is None:
            data = self._tenants[tenant] = _Tenant()
        return data

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tenants.clear()

    async def ping(self) -> None:
        return None

    @asynccontextmanager
    async def transaction(self, tenant: str) -> AsyncIterator[MemoryOps]:
        data = self._tenant(tenant)
        undo: Undo = []
        async with data.lock:
            try:
                yield _TenantGuard(self, undo, tenant)
            except BaseException:
                for memory_id, previous, vector in reversed(undo):
                    data.restore(memory_id, previous, vector)
                raise
