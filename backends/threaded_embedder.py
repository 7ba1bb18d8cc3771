"""What the bundled embedders share: a model loaded in a worker thread when the embedder is
entered (loading reads tens of megabytes), and every embedding call run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

from batchsvc.storage import Vector

M = TypeVar("M")


class ThreadedEmbedder(Generic[M]):
    """Subclasses say how to load their model and how to embed with it, both run in a thread."""

    #: How errors name the embedder.
    name = "embedder"

    def __init__(self) -> None:
        self._model: M | None = None

    def _load_model(self) -> M:
        raise NotImplementedError

    def _embed(self, model: M, texts: list[str]) -> list[Vector]:
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
        return await asyncio.to_thread(self._embed, self._model, list(texts))


def unit_rows(matrix: npt.NDArray[np.float64]) -> list[Vector]:
    """Each row scaled to unit length. A zero row (a text of only unknown tokens) stays zero
    rather than becoming NaN, as `norm=True`-style normalisation would make it."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return [tuple(row) for row in matrix.tolist()]
