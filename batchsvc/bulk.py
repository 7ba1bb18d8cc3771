"""Bulk creates: a run of consecutive creates in a batch goes to storage in one call.

Why: most of a create's cost on a durable backend is per call, not per row (a round trip to
the database's thread, a place in a commit, a task switch in the executor), and batches of
creates are the commonest batch. A backend that offers `CreatesMany` gets each run of two or
more consecutive valid creates of a batch at once, when the first of them is due to run.

It changes nothing a client can see but the time taken:
- the run's creates are consecutive and none waits for anything but the ones before it, so in
  every mode (sequential, parallel, stopping at the first failure or not) running them together
  at the first one's turn is an order the batch could have run them in;
- `create_many` is all or nothing. When it succeeds, each create succeeds with one attempt,
  as it would have alone. When it fails, nothing was stored, and each create then runs on its
  own, with its own retries, so each reports exactly what it would have without the bulk; the
  failed call is not counted in their `attempts` (it is in the storage metrics);
- only the batch deadline, passing while the call runs, settles them all without a retry:
  each reports TIMEOUT, "the batch deadline passed while the operation ran; it had no effect",
  which is what each of them was doing.
"""

from __future__ import annotations

from typing import Any

from batchsvc.models import utc_now
from batchsvc.operations import CreateOp
from batchsvc.run_state import BatchRun
from batchsvc.storage import ToCreate

#: The most creates one call takes: a call that fails is redone one by one, so this bounds
#: the redo; it is also the batch size API.md allows by default.
BULK_CAP = 100


def run_of_creates(run: BatchRun, index: int) -> list[int]:
    """`index` and the consecutive creates after it that may go to storage with it; empty if
    there are fewer than two, or the ops have no bulk create."""
    if run.bulk is None or not _takes(run, index):
        return []
    indices = [index]
    later = index + 1
    while later < len(run.operations) and len(indices) < BULK_CAP and _takes(run, later):
        if later in run.started or later in run.claims:
            break
        indices.append(later)
        later += 1
    return indices if len(indices) > 1 else []


def _takes(run: BatchRun, index: int) -> bool:
    # A create whose embedding failed fails on its own, without a storage call.
    return isinstance(run.operations[index], CreateOp) and index not in run.vectors.failed


def new_memories(run: BatchRun, indices: list[int]) -> list[ToCreate]:
    """The memories the creates at `indices` store, with their vectors; their ids were drawn
    when the batch began, so a redo one by one stores the same ids."""
    now = utc_now()
    items: list[ToCreate] = []
    for index in indices:
        op = run.operations[index]
        assert isinstance(op, CreateOp)
        items.append((op.data.build(run.new_ids[index], now), run.vectors.vectors.get(index)))
    return items


def settle(run: BatchRun, indices: list[int], items: list[ToCreate]) -> None:
    """Report the creates stored, as each would report itself."""
    for index, (memory, _) in zip(indices, items, strict=True):
        run.created[index] = memory.id
        result = run.results[index]
        result.attempts = 1
        answer: dict[str, Any] = {"id": memory.id, "created_at": memory.created_at}
        result.succeed(answer)
