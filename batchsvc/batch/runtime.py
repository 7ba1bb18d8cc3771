"""What every step of a batch's execution reads: the storage, the limits, the embedder and the
clocks. One value, built by the executor, so that the executor, the attempts and the bulk runs
share one notion of time (tests substitute the clock, the sleep and the jitter)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from attrs import frozen

from batchsvc.batch.state import BatchState
from batchsvc.embedding import Embedder
from batchsvc.limits import Limits
from batchsvc.storage import Storage


@frozen
class Runtime:
    storage: Storage
    limits: Limits
    #: The embedder, or None when semantic search is off (no embedder, or a backend that
    #: stores no vectors): then nothing is embedded.
    embedder: Embedder | None
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    jitter: Callable[[], float]

    def loop_time(self, moment: float) -> float:
        """`moment` on our clock as a time on the loop's clock, which asyncio timeouts read."""
        return asyncio.get_running_loop().time() + (moment - self.clock())

    def call_until(self, state: BatchState) -> float:
        """When a storage call begun now must end (loop time): the operation time-out or the
        batch deadline, whichever comes first."""
        op_deadline = self.clock() + self.limits.operation_timeout_ms / 1000
        return self.loop_time(min(op_deadline, state.deadline))

    def runs_parallel(self, state: BatchState) -> bool:
        return state.options.parallel and self.limits.max_parallel > 1
