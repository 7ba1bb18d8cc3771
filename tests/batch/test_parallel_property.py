"""`parallel` changes only the timing: for any batch, the final state and every operation's
result are the same with `parallel` true and false (API.md, "Ordering under parallel").

Each example runs one random batch twice, on two fresh stores holding the same memories, once
sequentially and once in parallel, with small random delays on every storage call so that the
parallel run really interleaves. Generated ids and timestamps differ between runs, so both are
normalised: an id becomes `$N`, the index of the create that made it.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsvc.batch.executor import BatchExecutor
from batchsvc.limits import Limits
from batchsvc.models import Memory
from batchsvc.request.batch_body import decode_batch
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MEMORY_ID, TIMESTAMP

TENANT = "acme"
VOCAB = ("apple", "river", "stone", "cloud", "ember", "frost")
SEEDED = {
    "mem_00000000000000a1": "seed apple river",
    "mem_00000000000000a2": "seed stone cloud stone",
    "mem_00000000000000a3": "seed ember",
}
MISSING = "mem_00000000000000ff"
STORAGE_METHODS = ("create", "get", "update", "delete", "search")

words = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3).map(" ".join)
update_data = st.one_of(
    words.map(lambda text: {"content": f"changed {text}"}),
    st.sampled_from(VOCAB).map(lambda word: {"title": word}),
    st.integers(0, 3).map(lambda n: {"metadata": {"n": n, "gone": None}}),
    st.lists(st.sampled_from(VOCAB), max_size=2).map(lambda tags: {"tags": tags}),
)


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    creates: list[int] = []
    for index in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(("create", "create", "read", "update", "delete", "search")))
        if kind == "create":
            invalid = draw(st.integers(0, 9)) == 0
            content = " " if invalid else f"item{index} {draw(words)}"
            operations.append({"type": "create", "data": {"content": content}})
            creates.append(index)
        elif kind == "search":
            limit = draw(st.sampled_from((2, 100)))
            options = {"limit": limit, "mode": "lexical"}
            operations.append({"type": "search", "query": draw(words), "options": options})
        else:
            targets = [f"${i}" for i in creates] + [*SEEDED, MISSING]
            operation: dict[str, Any] = {"type": kind, "id": draw(st.sampled_from(targets))}
            if kind == "update":
                operation["data"] = draw(update_data)
            operations.append(operation)
    return operations


def seeded_storage(delays: random.Random) -> FaultyStorage:
    storage = FaultyStorage()
    for memory_id, content in SEEDED.items():
        memory = Memory(memory_id, content, None, "context", {}, (), "t", "t", 1)
        storage.store._tenant(TENANT).put(memory)
    for method in STORAGE_METHODS:
        storage.delay(method, lambda: delays.choice((0.0, 0.0, 0.0002, 0.0005)))
    return storage


async def run_batch(
    operations: list[dict[str, Any]],
    parallel: bool,
    delays: random.Random,
    continue_on_error: bool = True,
) -> tuple[Any, Any]:
    """The normalised per-operation results and final state of one run."""
    storage = seeded_storage(delays)
    limits = Limits()
    options = {"continue_on_error": continue_on_error, "parallel": parallel}
    request = decode_batch(
        {"operations": operations, "options": options}, limits, supports_transactions=True
    )
    result = await BatchExecutor(storage, limits).execute(TENANT, request, "batch_property")
    results = [op.to_json() for op in result.operations]
    names = {
        op["result"]["id"]: f"${op['index']}"
        for op in results
        if op["type"] == "create" and op["status"] == "success"
    }
    page = await storage.store.list(TENANT, limit=1000)
    final = [memory.to_json() for memory in page.items]  # in listing order
    # Compared exactly, tied hits included: ids are drawn in request order before the batch
    # runs, so ties rank the same whichever create finished first.
    return normalise(results, names), normalise(final, names)


def normalise(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {names.get(key, key): normalise(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise(item, names) for item in value]
    if isinstance(value, str):
        if TIMESTAMP.fullmatch(value):
            return "<time>"
        return MEMORY_ID.sub(lambda found: names.get(found.group(), found.group()), value)
    return value


class TestParallelEqualsSequential:
    """Any mix of creates, reads, updates and deletes (on `$N`, on existing ids, on a missing
    one) and searches gives the same results and the same final state in both modes, whether
    the batch goes on after failures or stops at the first."""

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(operations=batches(), seed=st.integers(0, 2**32 - 1), continue_on_error=st.booleans())
    def test_same_results_and_final_state(
        self, operations: list[dict[str, Any]], seed: int, continue_on_error: bool
    ) -> None:
        sequential = asyncio.run(
            run_batch(operations, False, random.Random(seed), continue_on_error)
        )
        parallel = asyncio.run(
            run_batch(operations, True, random.Random(seed + 1), continue_on_error)
        )
        assert parallel[0] == sequential[0]
        assert parallel[1] == sequential[1]
