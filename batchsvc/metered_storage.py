"""`MeteredStorage`: any `Storage`, with every call timed into `Metrics`.

It changes nothing else: arguments, return values, exceptions (the same objects) and
cancellation pass through as they are, and so do the backend's flags, lifecycle and
transactions. Calls made through a transaction's ops are timed like the backend's own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self, TypeVar

from batchsvc.metrics import Metrics, StorageOutcome
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.storage import (
    ChangesMany,
    ChecksReadiness,
    CreatesMany,
    MemoryOps,
    Outcome,
    Page,
    PlannedChange,
    Readiness,
    Storage,
    ToCreate,
    Vector,
)

T = TypeVar("T")


class _MeteredOps:
    """Any `MemoryOps`, each call timed; outcome `error` whenever the call did not return."""

    def __init__(self, inner: MemoryOps, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        # Only when the wrapped ops have them: the executor looks for these attributes.
        if isinstance(inner, CreatesMany):
            self.create_many = self._create_many(inner)
        if isinstance(inner, ChangesMany):
            self.change_many = self._change_many(inner)
            self.get_many = self._get_many(inner)

    def _create_many(
        self, inner: CreatesMany
    ) -> Callable[[str, Sequence[ToCreate]], Awaitable[None]]:
        async def create_many(tenant: str, items: Sequence[ToCreate]) -> None:
            await self._timed("create_many", inner.create_many(tenant, items))

        return create_many

    def _change_many(self, inner: ChangesMany) -> Callable[..., Awaitable[list[Outcome]]]:
        async def change_many(
            tenant: str, changes: Sequence[PlannedChange], *, stop_at_miss: bool
        ) -> list[Outcome]:
            call = inner.change_many(tenant, changes, stop_at_miss=stop_at_miss)
            return await self._timed("change_many", call)

        return change_many

    def _get_many(self, inner: ChangesMany) -> Callable[..., Awaitable[dict[str, Memory]]]:
        async def get_many(tenant: str, memory_ids: Sequence[str]) -> dict[str, Memory]:
            return await self._timed("get_many", inner.get_many(tenant, memory_ids))

        return get_many

    async def _timed(self, method: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        outcome: StorageOutcome = "error"
        try:
            value = await call
            outcome = "ok"
            return value
        finally:
            # A cancelled call counts as an error too: a backend stalled until the batch
            # deadline cancels it must show in the latencies, not vanish from them.
            self._metrics.storage_call(method, outcome, time.perf_counter() - started)

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        await self._timed("create", self._inner.create(tenant, memory, vector))

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return await self._timed("get", self._inner.get(tenant, memory_id))

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        return await self._timed(
            "update", self._inner.update(tenant, memory_id, patch, now, vector, vector_text)
        )

    async def delete(self, tenant: str, memory_id: str) -> bool:
        return await self._timed("delete", self._inner.delete(tenant, memory_id))

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        return await self._timed("search", self._inner.search(tenant, query))

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        call = self._inner.list(
            tenant, tags=tags, memory_type=memory_type, limit=limit, cursor=cursor
        )
        return await self._timed("list", call)


class _MeteredTransaction:
    """The backend's transaction context, yielding metered ops; entering and leaving it (the
    commit or rollback) are the backend's own, and whatever its `__aexit__` returns (whether
    it suppresses an exception) is returned unchanged."""

    def __init__(self, inner: AbstractAsyncContextManager[MemoryOps], metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def __aenter__(self) -> MemoryOps:
        return _MeteredOps(await self._inner.__aenter__(), self._metrics)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)


class MeteredStorage(_MeteredOps):
    """A `Storage` that times each call of the backend it wraps."""

    def __init__(self, inner: Storage, metrics: Metrics) -> None:
        super().__init__(inner, metrics)
        self.inner = inner
        # Copied, not looked up per use: the protocol declares them plain attributes, and a
        # backend's capabilities do not change while it runs.
        self.supports_transactions = inner.supports_transactions
        self.supports_vectors = inner.supports_vectors
        # Only when the backend has it: `/readyz` looks for it, else asks `ping`.
        if isinstance(inner, ChecksReadiness):
            self.readiness = self._readiness(inner)

    def _readiness(self, inner: ChecksReadiness) -> Callable[[], Awaitable[Readiness]]:
        async def readiness() -> Readiness:
            return await self._timed("readiness", inner.readiness())

        return readiness

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Not a backend of its own: wrap a built one with `MeteredStorage(backend, metrics)`."""
        raise TypeError("MeteredStorage wraps a backend; it is not configured from options")

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

    async def ping(self) -> None:
        await self._timed("ping", self.inner.ping())

    def transaction(self, tenant: str) -> AbstractAsyncContextManager[MemoryOps]:
        # Called now, not on entry, so a backend that refuses at call time still does.
        return _MeteredTransaction(self.inner.transaction(tenant), self._metrics)


__all__ = ["MeteredStorage"]
