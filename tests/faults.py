"""`FaultyStorage`: a real `MemoryStore` that can be told to fail, stall, and count its calls.

Faults apply to the store's own operations and to those of its transactions alike, so an atomic
batch meets the same faults as any other. A delay sleeps *before* delegating: cancelling the call
during the delay means the store never saw it, which keeps the backend contract's truthfulness.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from attrs import define, field
from batchsvc_backends.memory import MemoryStore

from batchsvc.errors import TransientBackendError
from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.storage import (
    ChangesMany,
    CreatesMany,
    MemoryOps,
    Outcome,
    Page,
    PlannedChange,
    Readiness,
    ToCreate,
    Vector,
)

Seconds = float | Callable[[], float]


@define
class _Delay:
    seconds: Seconds
    times: int | None  # None: every call
    skip: int  # calls to let through undelayed first


@define
class Faults:
    """What to do to each method's next calls, shared by a store and its transactions."""

    calls: Counter[str] = field(factory=Counter)
    _failures: dict[str, list[Exception]] = field(factory=dict)
    _delays: dict[str, _Delay] = field(factory=dict)

    async def before(self, method: str) -> None:
        """Count the call, then stall and/or raise as told; called before delegating."""
        self.calls[method] += 1
        delay = self._delays.get(method)
        if delay is not None:
            await self._stall(method, delay)
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    async def _stall(self, method: str, delay: _Delay) -> None:
        if delay.skip > 0:
            delay.skip -= 1
            return
        if delay.times is not None:
            delay.times -= 1
            if delay.times <= 0:
                del self._delays[method]
        seconds = delay.seconds() if callable(delay.seconds) else delay.seconds
        await asyncio.sleep(seconds)


class _FaultyOps:
    """Any `MemoryOps`, with `Faults` applied before each call."""

    def __init__(self, inner: MemoryOps, faults: Faults, *, bulk: bool = False) -> None:
        self._inner = inner
        self.faults = faults
        self.bulk = bulk
        # Only when asked: the executor uses bulk calls wherever it finds them, and the
        # faults of most tests are aimed at `create`, `update` and `delete`.
        if bulk and isinstance(inner, CreatesMany):
            self.create_many = self._create_many(inner)
        if bulk and isinstance(inner, ChangesMany):
            self.change_many = self._change_many(inner)
            self.get_many = self._get_many(inner)

    def _create_many(
        self, inner: CreatesMany
    ) -> Callable[[str, Sequence[ToCreate]], Awaitable[None]]:
        async def create_many(tenant: str, items: Sequence[ToCreate]) -> None:
            await self.faults.before("create_many")
            await inner.create_many(tenant, items)

        return create_many

    def _change_many(self, inner: ChangesMany) -> Callable[..., Awaitable[list[Outcome]]]:
        async def change_many(
            tenant: str, changes: Sequence[PlannedChange], *, stop_at_miss: bool
        ) -> list[Outcome]:
            await self.faults.before("change_many")
            return await inner.change_many(tenant, changes, stop_at_miss=stop_at_miss)

        return change_many

    def _get_many(self, inner: ChangesMany) -> Callable[..., Awaitable[dict[str, Memory]]]:
        async def get_many(tenant: str, memory_ids: Sequence[str]) -> dict[str, Memory]:
            await self.faults.before("get_many")
            return await inner.get_many(tenant, memory_ids)

        return get_many

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        await self.faults.before("create")
        await self._inner.create(tenant, memory, vector)

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        await self.faults.before("get")
        return await self._inner.get(tenant, memory_id)

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        await self.faults.before("update")
        return await self._inner.update(tenant, memory_id, patch, now, vector, vector_text)

    async def delete(self, tenant: str, memory_id: str) -> bool:
        await self.faults.before("delete")
        return await self._inner.delete(tenant, memory_id)

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        await self.faults.before("search")
        return await self._inner.search(tenant, query)

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        await self.faults.before("list")
        return await self._inner.list(
            tenant, tags=tags, memory_type=memory_type, limit=limit, cursor=cursor
        )


class FaultyStorage(_FaultyOps):
    """A `Storage` around a real `MemoryStore` (a new one unless given)."""

    def __init__(
        self, inner: MemoryStore | None = None, *, bulk: bool = False, readiness: bool = False
    ) -> None:
        """`bulk`: offer the store's `create_many` and `change_many` (faults on them are
        named so). `readiness`: offer `ChecksReadiness` (`not_ready` says its answer)."""
        self.store = inner if inner is not None else MemoryStore()
        super().__init__(self.store, Faults(), bulk=bulk)
        self.supports_transactions = self.store.supports_transactions
        self.supports_vectors = self.store.supports_vectors
        self.answer = Readiness(True)
        if readiness:
            self.readiness = self._readiness

    async def _readiness(self) -> Readiness:
        await self.faults.before("readiness")
        return self.answer

    def not_ready(self, reason: str, message: str = "") -> None:
        """Readiness answers not ready for `reason` from now on."""
        self.answer = Readiness(False, reason, message)

    @property
    def calls(self) -> Counter[str]:
        return self.faults.calls

    def fail(self, method: str, times: int = 1, error: Exception | None = None) -> None:
        """Raise `error` (default: TransientBackendError) on the next `times` calls of `method`."""
        made = error if error is not None else TransientBackendError(f"{method}: injected fault")
        self.faults._failures.setdefault(method, []).extend([made] * times)

    def delay(
        self, method: str, seconds: Seconds, *, times: int | None = None, skip: int = 0
    ) -> None:
        """Sleep `seconds` before each of the next `times` calls of `method` (None: all of
        them), after letting `skip` calls through; `seconds` may be a callable, asked per call."""
        self.faults._delays[method] = _Delay(seconds, times, skip)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(MemoryStore.from_options(options))

    async def __aenter__(self) -> Self:
        await self.store.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.store.__aexit__(exc_type, exc, tb)

    async def ping(self) -> None:
        await self.faults.before("ping")
        await self.store.ping()

    @asynccontextmanager
    async def transaction(self, tenant: str) -> AsyncIterator[MemoryOps]:
        await self.faults.before("transaction")
        async with self.store.transaction(tenant) as tx:
            yield _FaultyOps(tx, self.faults, bulk=self.bulk)
