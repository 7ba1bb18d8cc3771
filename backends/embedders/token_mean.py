"""The mean of a text's token vectors, in memory bounded whatever the texts: WordLlama's
pooling without its padding.

`WordLlamaInference.embed` pads every text of a chunk of 64 to the longest one's token count
and gathers a (64, longest, dim) float32 array, then one more of that size for the mask
product: one batch of 100 texts of 99,000 characters took a server from 1.7 GB to 11.9 GB.
Yet a text's vector is only the mean of its tokens' rows in the embedding table. So here the
texts are tokenized a group at a time (at most GROUP_CHARS characters, or one longer text),
unpadded, and each text's rows are gathered and summed in slices of at most SLICE tokens: a
call holds one group's tokens and one slice of rows, and `stop` is checked between groups
and slices, so an abandoned call ends within one of them.

The vectors are bit for bit those of `WordLlamaInference.embed`: numpy sums a float32 array
over its first axis row after row, as it sums wordllama's padded array over its token axis
(where padding adds exact zeros); and a slice after the first starts from the running sum, so
a long text is summed in the same order too (tests/backends/embedders/test_embedders.py
compares them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from attrs import frozen
from tokenizers import Tokenizer

from .threaded import Stop, text_groups

#: Characters tokenized in one call, unless one text is longer: two texts at the content limit,
#: which the tokenizer can work on in two threads at once (its threads: one per core).
#: Bounds the tokenizer's records held at once (about 120 bytes a token, and a character is at
#: most 4 tokens: under 100 MB) and the work between two checks of `stop` (about 0.1 s of
#: text, 0.45 s for 200,000 emoji).
GROUP_CHARS = 200_000
#: Token rows gathered at once: 8,192 x 256 float32 is 8 MiB. The texts of ordinary memories
#: (up to about 30,000 characters of English) fit in one slice.
SLICE = 8_192

Table = npt.NDArray[np.float32]


@frozen
class TokenTable:
    """An embedding table (one row per token id) and a tokenizer that neither pads nor cuts."""

    table: Table
    tokenizer: Tokenizer

    @classmethod
    def of_wordllama(cls, model: Any) -> TokenTable:
        """From a loaded `WordLlamaInference`: its (possibly truncated) float32 table, and a
        copy of its tokenizer without the padding it turns on (the model keeps its own)."""
        tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(np.ascontiguousarray(model.embedding, dtype=np.float32), tokenizer)

    @property
    def dimensions(self) -> int:
        return int(self.table.shape[1])

    def means(self, texts: list[str], stop: Stop) -> Table:
        """One row per text: the mean of its tokens' rows; zero for a text without tokens."""
        means = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Row 0 holds the running sum, rows 1.. one slice of gathered token rows. Sized for
        # the longest text so far, up to SLICE: a query's call needs a few rows, not 8 MiB.
        buffer = np.empty((0, self.dimensions), dtype=np.float32)
        for group in text_groups(texts, GROUP_CHARS):
            stop.check()
            # As wordllama tokenizes: no special tokens. `_fast`: the same ids, no offsets. One
            # text alone (a search's query) skips the batch call: it hands the work to the
            # tokenizer's thread pool, whose threads then compete with the event loop for a
            # text that takes microseconds (bench_search: semantic p50 at 100,000 memories
            # 13.4-13.7 ms with it, 11.6 ms without).
            if len(group) == 1:
                encodings = [self.tokenizer.encode(texts[group[0]], add_special_tokens=False)]
            else:
                encodings = self.tokenizer.encode_batch_fast(
                    [texts[index] for index in group], add_special_tokens=False
                )
            longest = min(SLICE, max(len(encoding.ids) for encoding in encodings))
            if len(buffer) < longest + 1:
                buffer = np.empty((longest + 1, self.dimensions), dtype=np.float32)
            for index, encoding in zip(group, encodings, strict=True):
                ids = np.asarray(encoding.ids, dtype=np.intp)
                means[index] = self._mean(ids, buffer, stop)
        return means

    def _mean(self, ids: npt.NDArray[np.intp], buffer: Table, stop: Stop) -> Table:
        # Out-of-range ids are clamped to the last row, as wordllama does.
        np.clip(ids, 0, len(self.table) - 1, out=ids)
        buffer[0] = 0.0
        for start in range(0, len(ids), SLICE):
            if start:
                stop.check()
            piece = ids[start : start + SLICE]
            np.take(self.table, piece, axis=0, out=buffer[1 : len(piece) + 1])
            buffer[0] = buffer[: len(piece) + 1].sum(axis=0, dtype=np.float32)
        total: Table = buffer[0] / np.float32(max(len(ids), 1))
        return total
