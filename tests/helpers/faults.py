"""`FaultyStorage`: a real `MemoryStore` that can be told to fail, stall, and count its calls.

Faults apply to the store's own operations and to those of its transactions alike, so an atomic
batch meets the same faults as any other. A delay sleeps *before* delegating: cancelling the call
during the delay means the store never saw it, which keeps the backend contract's truthfulness.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar

from attrs import define, field
from batchsvc_backends.memory import MemoryStore

from batchsvc.errors import TransientBackendError
from batchsvc.storage import ChangesMany, CreatesMany, Readiness
from batchsvc.storage_proxy import StorageProxy

T = TypeVar("T")
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


class FaultyStorage(StorageProxy):
    """A `Storage` around a real `MemoryStore` (a new one unless given), whose every call (its
    transactions' too) meets `Faults` first, in the one hook of `batchsvc.storage_proxy`."""

    def __init__(
        self, inner: MemoryStore | None = None, *, bulk: bool = False, readiness: bool = False
    ) -> None:
        """`bulk`: offer the store's `create_many` and `change_many` (faults on them are
        named so); without it they are held back: the executor uses bulk calls wherever it
        finds them, and the faults of most tests are aimed at `create`, `update` and `delete`.
        `readiness`: offer `ChecksReadiness` (`not_ready` says its answer)."""
        self.store = inner if inner is not None else MemoryStore()
        super().__init__(self.store, hide=() if bulk else (CreatesMany, ChangesMany))
        self.faults = Faults()
        self.bulk = bulk
        self.answer = Readiness(True)
        if readiness:
            self.readiness = functools.partial(self._forward, "readiness", None, self._answer)

    async def _forward(
        self, method: str, tenant: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        await self.faults.before(method)
        return await call()

    async def _answer(self) -> Readiness:
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
