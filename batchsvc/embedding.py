"""The embedder contract: what turns text into the vectors that semantic and hybrid search rank by.

An embedder is a plugin like a backend: a class registered under the entry-point group
`batchsvc.embedders`, chosen by the config's `[embedder] name` (the entry-point name), built from
its `[embedder.options]` table. The core never imports an embedder's library; `none` means no
embedder, and search is lexical only.

Public: what `__all__` names is the stable surface for third-party embedders, and a change to it
is recorded in CHANGELOG.md ("Contract changes"); docs/embedders.md is the implementer's page.

Rules that hold for every embedder:

- Vectors are unit length (L2 norm 1, within float rounding), so a dot product is the cosine.
  A text with nothing the model knows may get the zero vector; it then matches nothing.
- Every vector of one embedder has `dimensions` components, whatever the text.
- Work that takes CPU time (loading the model, embedding) runs off the event loop, e.g. through
  `asyncio.to_thread`, so one batch's embedding never stalls other requests' I/O.
- `embed` takes many texts at once and should cost far less than one call per text: the
  executor embeds every text of a batch in one call.
- A failure raises an exception (any); the executor fails the operations that needed the
  vectors with BACKEND_UNAVAILABLE and runs the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from batchsvc.storage import Vector


@runtime_checkable
class Embedder(Protocol):
    """A text embedding model behind an async lifecycle."""

    #: How many components every vector has.
    dimensions: int
    # Optional, not declared here so that embedders without it still conform: `model`, a
    # string naming the model and whatever changes its vectors. A store remembers it with
    # the vectors (`batchsvc.model_stamp`); without it, the class and dimensions stand in.

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build the embedder from its config table; raise ValueError naming a bad option
        (`batchsvc.plugins.options.read_options` checks a table, in the service's words).

        Cheap and synchronous: loading the model waits for `__aenter__`."""

    async def __aenter__(self) -> Self:
        """Load the model, off the event loop. Entering an entered embedder is harmless."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the model; after this `embed` is not called."""

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One unit-length vector per text, in order, computed off the event loop."""


def embedding_text(title: str | None, content: str) -> str:
    """The text of a memory that is embedded: the same text the lexical index reads."""
    return f"{title}\n{content}" if title else content


__all__ = ["Embedder", "Vector", "embedding_text"]
