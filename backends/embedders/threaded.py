"""What the bundled embedders share: a model loaded in a worker thread when the embedder is
entered (loading reads tens of megabytes), and every embedding call run off the event loop.

A thread cannot be interrupted, and `asyncio.to_thread` goes on running after its awaiting
coroutine is cancelled (the batch deadline passed, or the request went away). So each call
gets a `Stop` that is set once nobody waits for the result, and `_embed` checks it between
groups of work: an abandoned call ends within one group instead of embedding texts whose
vectors are thrown away while it holds a core."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

from batchsvc.storage import Vector

M = TypeVar("M")


class EmbeddingAbandoned(Exception):
    """Raised in the worker thread by `Stop.check` once the caller no longer waits."""


class Stop:
    """Set when nobody waits for an embedding call any more; the worker checks it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise EmbeddingAbandoned if the call's result is no longer wanted."""
        if self._event.is_set():
            raise EmbeddingAbandoned("the embedding call was abandoned by its caller")


class ThreadedEmbedder(Generic[M]):
    """Subclasses say how to load their model and how to embed with it, both run in a thread."""

    #: How errors name the embedder.
    name = "embedder"

    def __init__(self) -> None:
        self._model: M | None = None

    def _load_model(self) -> M:
        raise NotImplementedError

    def _embed(self, model: M, texts: list[str], stop: Stop) -> list[Vector]:
        """The vectors; call `stop.check()` between groups of bounded work."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        if self._model is None:
            self._model = await asyncio.to_thread(self._load_model)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._model = None

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if self._model is None:
            raise RuntimeError(f"the {self.name} embedder is not entered")
        if not texts:
            return []
        stop = Stop()
        try:
            return await asyncio.to_thread(self._embed, self._model, list(texts), stop)
        finally:
            # Reached on cancellation too, while the thread may still run: it then stops at
            # its next check. After a normal return the thread is done and this is moot.
            stop.set()


def unit_rows(matrix: npt.NDArray[np.float64]) -> list[Vector]:
    """Each row scaled to unit length. A zero row (a text of only unknown tokens) stays zero
    rather than becoming NaN, as `norm=True`-style normalisation would make it."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return [tuple(row) for row in matrix.tolist()]


def text_groups(texts: Sequence[str], max_chars: int) -> Iterator[list[int]]:
    """Consecutive indices of `texts`, in order, of at most `max_chars` characters a group (or
    one longer text): units of work of bounded size, between which `Stop` is checked."""
    group: list[int] = []
    size = 0
    for index, text in enumerate(texts):
        if group and size + len(text) > max_chars:
            yield group
            group, size = [], 0
        group.append(index)
        size += len(text)
    if group:
        yield group
