"""The default embedder: WordLlama, whose model ships inside its wheel, so it works offline.

`WordLlama.load()` with no `cache_dir` finds the bundled weights but not the bundled tokenizer,
and then tries to download it (docs/spec/FACTS.md). Pointing `cache_dir` at the installed
package's own folder makes both resolve locally, and `disable_download=True` turns any file
that is still missing into an immediate error instead of a network call that hangs offline.

Options: `dimensions`, 64, 128 or 256 (default 256). WordLlama's vectors are Matryoshka-trained,
so a prefix of a vector is itself an embedding: fewer dimensions trade recall for memory.

Embedding does not go through `WordLlamaInference.embed`, whose padding made memory grow with
texts x longest text (100 texts of 99,000 characters took a server to 11.9 GB), but through
`TokenTable` (token_mean.py): the same vectors bit for bit, in under 100 MB whatever the texts,
and a call whose batch was answered stops within one group of texts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import wordllama
from wordllama import WordLlama

from batchsvc.plugins.options import Option, read_options
from batchsvc.storage import Vector

from .threaded import Stop, ThreadedEmbedder, unit_rows
from .token_mean import TokenTable

#: The configuration whose files the wheel bundles; others would need a download.
MODEL = "l2_supercat"
SHIPPED_DIMENSIONS = 256
DIMENSIONS = (64, 128, 256)
OPTIONS = {"dimensions": Option(int, SHIPPED_DIMENSIONS, choices=DIMENSIONS)}


def wordllama_model(dimensions: int) -> Any:
    """WordLlama's own model (`WordLlamaInference`), with `dimensions` of its vectors."""
    trunc = None if dimensions == SHIPPED_DIMENSIONS else dimensions
    return WordLlama.load(
        MODEL,
        cache_dir=Path(wordllama.__file__).parent,
        dim=SHIPPED_DIMENSIONS,
        trunc_dim=trunc,
        disable_download=True,
    )


@functools.cache
def _load(dimensions: int) -> TokenTable:
    """The model, loaded once per process and dimension: it is read-only after loading, so
    every app in the process (tests build hundreds) can share it."""
    return TokenTable.of_wordllama(wordllama_model(dimensions))


class WordLlamaEmbedder(ThreadedEmbedder[TokenTable]):
    """Static token embeddings averaged over the text: about 30,000 short texts a second."""

    name = "wordllama"

    def __init__(self, dimensions: int = SHIPPED_DIMENSIONS) -> None:
        super().__init__()
        self.dimensions = dimensions
        #: Names its vectors (`batchsvc.model_stamp`): a truncated model is another space.
        self.model = f"wordllama {MODEL} {dimensions}"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        values = read_options(options, OPTIONS, "the wordllama embedder")
        return cls(values["dimensions"])

    def _load_model(self) -> TokenTable:
        return _load(self.dimensions)

    def _embed(self, model: TokenTable, texts: list[str], stop: Stop) -> list[Vector]:
        return unit_rows(model.means(texts, stop).astype(np.float64))
