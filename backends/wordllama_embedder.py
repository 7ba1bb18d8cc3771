"""The default embedder: WordLlama, whose model ships inside its wheel, so it works offline.

`WordLlama.load()` with no `cache_dir` finds the bundled weights but not the bundled tokenizer,
and then tries to download it (../shared/FACTS.md). Pointing `cache_dir` at the installed
package's own folder makes both resolve locally, and `disable_download=True` turns any file
that is still missing into an immediate error instead of a network call that hangs offline.

Options: `dimensions`, 64, 128 or 256 (default 256). WordLlama's vectors are Matryoshka-trained,
so a prefix of a vector is itself an embedding: fewer dimensions trade recall for memory.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import wordllama
from wordllama import WordLlama

from batchsvc.storage import Vector

#: The configuration whose files the wheel bundles; others would need a download.
MODEL = "l2_supercat"
SHIPPED_DIMENSIONS = 256
DIMENSIONS = (64, 128, 256)
OPTIONS = frozenset(("dimensions",))


@functools.cache
def _load(dimensions: int) -> Any:
    """The model, loaded once per process and dimension: it is read-only after loading, so
    every app in the process (tests build hundreds) can share it."""
    trunc = None if dimensions == SHIPPED_DIMENSIONS else dimensions
    return WordLlama.load(
        MODEL,
        cache_dir=Path(wordllama.__file__).parent,
        dim=SHIPPED_DIMENSIONS,
        trunc_dim=trunc,
        disable_download=True,
    )


class WordLlamaEmbedder:
    """Static token embeddings averaged over the text: about 30,000 short texts a second."""

    def __init__(self, dimensions: int = SHIPPED_DIMENSIONS) -> None:
        self.dimensions = dimensions
        self._model: Any = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; wordllama takes: dimensions")
        dimensions = options.get("dimensions", SHIPPED_DIMENSIONS)
        if type(dimensions) is not int or dimensions not in DIMENSIONS:
            raise ValueError(f"dimensions must be one of {list(DIMENSIONS)}, got {dimensions!r}")
        return cls(dimensions)

    async def __aenter__(self) -> Self:
        if self._model is None:
            self._model = await asyncio.to_thread(_load, self.dimensions)
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
            raise RuntimeError("the wordllama embedder is not entered")
        if not texts:
            return []
        return await asyncio.to_thread(self._embed, self._model, list(texts))

    @staticmethod
    def _embed(model: Any, texts: list[str]) -> list[Vector]:
        matrix = np.asarray(model.embed(texts), dtype=np.float64)
        # Normalised here rather than with `norm=True`, so that a text of only unknown tokens
        # (a zero vector) stays zero instead of becoming NaN.
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        return [tuple(row) for row in matrix.tolist()]
