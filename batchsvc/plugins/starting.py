"""Starting the parts of the service (storage, embedder): a part that cannot start stops the
process with a message, instead of a traceback.

`CannotStart` carries the part's own message (which says what is wrong and what to do), named
by the part; `batchsvc serve` and `batchsvc reembed` print it and exit 2, as for a bad config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from batchsvc.errors import CannotStart

T = TypeVar("T")


@asynccontextmanager
async def started(what: str, part: AbstractAsyncContextManager[T, Any]) -> AsyncIterator[T]:
    """`async with part`, where a failure to enter it is `CannotStart` naming `what`. Only
    entering is translated: a fault while running or stopping goes on as it is."""
    async with AsyncExitStack() as stack:
        try:
            entered = await stack.enter_async_context(part)
        except Exception as error:
            raise CannotStart(f"{what}: {error}") from error
        yield entered
