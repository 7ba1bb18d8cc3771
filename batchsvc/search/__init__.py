"""The search toolkit, public: for backends that rank in memory, as the bundled ones do.

`lexical` is a BM25 index with scores normalised to [0, 1] (`LexicalIndex`, `tokenize`, and
`Overlay` for a transaction's uncommitted words); `vectors` a brute-force cosine index
(`VectorIndex`, `row_cosines`) and the hybrid fusion (`fuse`); `ranking` walks the candidates
of a search's mode under its threshold, filters and limit (`ranked`, then `select`, or
`select_fetching` for a backend that reads memories with I/O). A backend that uses them ranks
exactly as `batchsvc.storage.MemoryOps.search` defines, with the scores and order of the
bundled backends. What `__all__` names here (and in each module's `__all__`) is the stable
surface; docs/writing-a-backend.md shows how a backend uses it.
"""

from batchsvc.search.lexical import LexicalIndex, Overlay, tokenize
from batchsvc.search.ranking import (
    LexicalScores,
    Ranked,
    VectorScores,
    ranked,
    select,
    select_fetching,
)
from batchsvc.search.vectors import (
    SEMANTIC_WEIGHT,
    Row,
    Scores,
    VectorIndex,
    fuse,
    fuse_one,
    refuse_other_sizes,
    row_cosines,
)

__all__ = [
    "SEMANTIC_WEIGHT",
    "LexicalIndex",
    "LexicalScores",
    "Overlay",
    "Ranked",
    "Row",
    "Scores",
    "VectorIndex",
    "VectorScores",
    "fuse",
    "fuse_one",
    "ranked",
    "refuse_other_sizes",
    "row_cosines",
    "select",
    "select_fetching",
    "tokenize",
]
