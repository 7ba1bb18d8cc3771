"""Start a coroutine at once, and arm its time-out only if it has to wait.

An asyncio time-out can fire only while a coroutine waits on the loop, so a call that finishes
without waiting (every call of the in-memory backend) needs no timer. Arming one per operation
cost about as much as the operation itself. A call that does wait is driven on, in the same
task, under `asyncio.timeout_at`, exactly as `await` would have driven it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExpired(Exception):
    """`await_until`'s own deadline cancelled the call (so, by the storage contract, it changed
    nothing). Distinct from a TimeoutError the call itself raised, which says no such thing."""


async def await_until(coro: Coroutine[Any, Any, T], until: float) -> T:
    """Await `coro`, raising DeadlineExpired if it still runs at loop time `until`."""
    try:
        yielded = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    timeout = asyncio.timeout_at(until)
    try:
        async with timeout:
            return await _Resumed(coro, yielded)
    except TimeoutError:
        if timeout.expired():
            raise DeadlineExpired from None
        raise


class _Resumed(Awaitable[T]):
    """The rest of a started coroutine: what `yield from` does, from its first yield on."""

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as error:  # cancellation, thrown in by the task
                try:
                    yielded = coro.throw(error)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                continue
            try:
                yielded = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
