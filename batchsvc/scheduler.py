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

from batchsvc.operations import DecodedOperation, InvalidOperation
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
        deps = dependencies(operations)
        if stops_on_failure:
            deps = _barrier_at_first_invalid(operations, deps)
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
        workers = min(self._width, self._unfinished)
        await asyncio.gather(*(self._worker() for _ in range(workers)))

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
            self._finished(index)

    def _finished(self, index: int) -> None:
        self._unfinished -= 1
        for later in self._dependents[index]:
            self._waiting[later] -= 1
            if self._waiting[later] == 0:
                heapq.heappush(self._ready, later)
        self._changed.set()


def _barrier_at_first_invalid(ops: list[DecodedOperation], deps: list[set[int]]) -> list[set[int]]:
    """When the batch stops on failure, an invalid operation fails only once every earlier one
    has finished, and nothing after it starts before it: exactly the sequential outcome."""
    first = next((i for i, op in enumerate(ops) if isinstance(op, InvalidOperation)), None)
    if first is None:
        return deps
    deps = [set(d) for d in deps]
    deps[first] = set(range(first))
    for later in range(first + 1, len(ops)):
        deps[later].add(first)
    return deps
