"""Parallel execution of one batch: a few workers take ready operations, lowest index first.

An operation is ready once every operation it depends on (`batchsvc.batch.dependencies`) has
finished. A pool of `width` workers, not a task per operation: an operation that never waits
(every call of the in-memory backend) then costs no task at all, and one that waits holds one
worker while the others go on.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable

from batchsvc.batch.dependencies import dependencies, waits_for_all_earlier
from batchsvc.request.operations import DecodedOperation


class ParallelScheduler:
    def __init__(
        self,
        operations: list[DecodedOperation],
        step: Callable[[int], Awaitable[None]],
        on_crash: Callable[[int, Exception], None],
        *,
        width: int,
        stops_on_failure: bool,
    ) -> None:
        deps = dependencies(operations)
        self._step = step
        self._on_crash = on_crash
        self._width = width
        # An operation that waits for every earlier one counts that as one more thing it waits
        # for, released when every operation before it has finished (`_prefix` reaches it).
        after_all = waits_for_all_earlier(operations, stops_on_failure)
        self._waiting = [len(d) + after for d, after in zip(deps, after_all, strict=True)]
        self._prefix_waiters = [i for i, after in enumerate(after_all) if after]
        self._prefix_waiters.reverse()  # popped from the end, lowest index first
        self._done = [False] * len(operations)
        self._prefix = 0  # every operation below this index has finished
        self._dependents: list[list[int]] = [[] for _ in operations]
        for index, waits in enumerate(deps):
            for earlier in waits:
                self._dependents[earlier].append(index)
        self._ready: list[int] = []
        for index, count in enumerate(self._waiting):
            if count == 0:
                self._ready.append(index)
        # Operation 0 has nothing before it: release it from the prefix wait at once.
        self._release_prefix_waiters()
        self._unfinished = len(operations)
        self._changed = asyncio.Event()

    async def execute(self) -> None:
        workers = [
            asyncio.create_task(self._worker()) for _ in range(min(self._width, self._unfinished))
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # One worker died of something no step should raise (or we were cancelled): stop
            # the others before anyone unwinds, so none writes through a closed transaction.
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _worker(self) -> None:
        while self._unfinished:
            if not self._ready:
                # Others are running what the rest depends on; wait for one to finish.
                self._changed.clear()
                await self._changed.wait()
                continue
            index = heapq.heappop(self._ready)
            try:
                await self._step(index)
            except Exception as error:  # a bug, not an operation's failure: report, go on
                self._on_crash(index, error)
            finally:
                self._finished(index)

    def _finished(self, index: int) -> None:
        self._unfinished -= 1
        self._done[index] = True
        for later in self._dependents[index]:
            self._release(later)
        while self._prefix < len(self._done) and self._done[self._prefix]:
            self._prefix += 1
        self._release_prefix_waiters()
        self._changed.set()

    def _release_prefix_waiters(self) -> None:
        while self._prefix_waiters and self._prefix_waiters[-1] <= self._prefix:
            self._release(self._prefix_waiters.pop())

    def _release(self, index: int) -> None:
        self._waiting[index] -= 1
        if self._waiting[index] == 0:
            heapq.heappush(self._ready, index)
