"""For the search tests: every search mode, typed."""

from __future__ import annotations

from batchsvc.models import SearchMode

#: Every search mode, lexical first: the order in which the tests run (and draw random queries
#: for) the modes. `batchsvc.models.SEARCH_MODES` has them the other way round.
MODES: tuple[SearchMode, ...] = ("lexical", "semantic", "hybrid")
