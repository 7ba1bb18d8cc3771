"""Parallel execution of one batch: a few workers take ready operations, lowest index first.

An operation is ready once every operation it depends on (`batchsvc.plan`) has finished. A
pool of `width` workers, not a task per operation: an operation that never waits (every call
of the in-memory backend) then costs no task at all, and one that waits holds one worker while
the others go on.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable

from batchsvc.operations import DecodedOperation
from batchsvc.plan import dependencies


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
        deps = dependencies(operations, stops_on_failure)
        self._step = step
        self._on_crash = on_crash
        self._width = width
        self._waiting = [len(d) for d in deps]
        self._dependents: list[list[int]] = [[] for _ in operations]
        for index, waits in enumerate(deps):
            for earlier in waits:
                self._dependents[earlier].append(index)
        self._ready = [i for i, count in enumerate(self._waiting) if count == 0]
        heapq.heapify(self._ready)
        self._unfinished = len(operations)
        self._changed = asyncio.Event()

    async def run(self) -> None:
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
        for later in self._dependents[index]:
            self._waiting[later] -= 1
            if self._waiting[later] == 0:
                heapq.heappush(self._ready, later)
        self._changed.set()
