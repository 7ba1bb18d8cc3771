"""The real wordllama embedder, loaded once for a module."""

from __future__ import annotations

import asyncio
from types import TracebackType

from batchsvc_backends.embedders.wordllama import SHIPPED_DIMENSIONS, WordLlamaEmbedder


class KeptEmbedder(WordLlamaEmbedder):
    """Never unloaded: the exit of an app that was given it leaves it loaded, so one embedder
    can serve every test of a module."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def loaded_wordllama(dimensions: int = SHIPPED_DIMENSIONS) -> KeptEmbedder:
    """A `KeptEmbedder` with its model loaded. The model holds no event loop, so any test's
    loop may use it: load it in a module-scoped fixture."""
    embedder = KeptEmbedder(dimensions)
    asyncio.run(embedder.__aenter__())
    return embedder
