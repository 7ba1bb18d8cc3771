"""`MeteredStorage`: any `Storage`, with every call timed into `Metrics`.

It changes nothing else: arguments, return values, exceptions (the same objects) and
cancellation pass through as they are, and so do the backend's flags, lifecycle and
transactions. Calls made through a transaction's ops are timed like the backend's own. What it
forwards, and that it offers an optional protocol exactly when the backend has it, is
`batchsvc.storage_proxy`'s: this adds the timing, in the one hook.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from batchsvc.metrics import Metrics, StorageOutcome
from batchsvc.storage import Storage
from batchsvc.storage_proxy import StorageProxy

T = TypeVar("T")


class MeteredStorage(StorageProxy):
    """A `Storage` that times each call of the backend it wraps; outcome `error` whenever the
    call did not return."""

    def __init__(self, inner: Storage, metrics: Metrics) -> None:
        super().__init__(inner)
        #: The backend itself, for what must not be timed (the start's check of its vectors).
        self.inner = inner
        self._metrics = metrics

    async def _forward(
        self, method: str, tenant: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        if method == "transaction":
            # Opening one waits until no other transaction holds what it needs (its tenant, or
            # SQLite's one writer): a wait for a lock, not a storage call's latency. The calls
            # made inside it are timed.
            return await call()
        started = time.perf_counter()
        outcome: StorageOutcome = "error"
        try:
            value = await call()
            outcome = "ok"
            return value
        finally:
            # A cancelled call counts as an error too: a backend stalled until the batch
            # deadline cancels it must show in the latencies, not vanish from them.
            self._metrics.storage_call(method, outcome, time.perf_counter() - started)


__all__ = ["MeteredStorage"]
