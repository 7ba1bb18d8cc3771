"""Bulk calls: a run of consecutive creates, or of consecutive updates and deletes, goes to
storage in one call.

Why: most of a write's cost on a durable backend is per call, not per row (a round trip to
the database's thread, a commit, a task switch in the executor), and with the default
`continue_on_error: false` a batch's writes run one after another, each its own commit. A
backend that offers `CreatesMany` gets each run of two or more consecutive valid creates of a
batch at once, when the first of them is due; one that offers `ChangesMany` gets runs of
updates and deletes, when writes run in order (not under `parallel` with
`continue_on_error`, where they already run side by side and share commits).

It changes nothing a client can see but the time taken:
- a run is consecutive, and when its first operation is due everything before it has
  finished (writes run in order), so running it at once is an order the batch could take;
- `create_many` is all or none: when it fails, each create runs on its own, with its own
  retries, as if the call had never been made (it is not counted in `attempts`);
- `change_many` applies the changes in order and stops at a change's own fault (and, when the
  batch stops at its first failure, at a memory not found). Each change applied, or not found,
  is settled with its outcome and one attempt, as it would have been alone; the one that
  faulted and those after it run on their own, in order. A text-changing update's vector is
  made beforehand, all of the run's in one embedder call, from the memory as read then: if
  an earlier change of the run (or another batch) changed its text since, the backend refuses
  it (`TextChanged`) and it runs on its own;
- only the batch deadline, passing while the call runs, settles all of the run at once: each
  reports TIMEOUT, "the batch deadline passed while the operation ran; it had no effect",
  which is what each was doing (one by one, the later ones would have been skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from batchsvc.batch.deadline import DeadlineExpired, await_until
from batchsvc.batch.embeddings import embed_texts
from batchsvc.batch.failures import not_found, ran_past_deadline
from batchsvc.batch.runtime import Runtime
from batchsvc.batch.state import BatchState
from batchsvc.embedding import Embedder, embedding_text
from batchsvc.errors import FieldError
from batchsvc.models import Memory, utc_now
from batchsvc.request.operations import CreateOp, DeleteOp, Ref, UpdateOp
from batchsvc.storage import Outcome, PlannedChange, PlannedDelete, PlannedUpdate, ToCreate

log = structlog.get_logger("batchsvc.batch.executor")

#: The most operations one call takes: a call that fails is redone one by one, so this bounds
#: the redo; it is also the batch size API.md allows by default.
BULK_CAP = 100


def _run(state: BatchState, index: int, takes: Any, *, again: bool = False) -> list[int]:
    """`index` and the consecutive operations after it that `takes`; empty if fewer than two.
    An operation an earlier call took and left unsettled runs alone, unless `again` and it
    was left only because a change before it faulted (`state.rebulk`): a call that failed as a
    whole would fail again, once per operation."""
    if not takes(state, index) or not _free(state, index, again):
        return []
    indices = [index]
    later = index + 1
    while later < len(state.operations) and len(indices) < BULK_CAP and takes(state, later):
        if later in state.started or not _free(state, later, again):
            break
        indices.append(later)
        later += 1
    return indices if len(indices) > 1 else []


def _free(state: BatchState, index: int, again: bool) -> bool:
    return index not in state.claims or (again and index in state.rebulk)


def run_of_creates(state: BatchState, index: int) -> list[int]:
    """The creates to store with the one at `index`; empty where there is no bulk to make."""
    return [] if state.bulk is None else _run(state, index, _takes_create)


def _takes_create(state: BatchState, index: int) -> bool:
    # A create whose embedding failed fails on its own, without a storage call.
    return isinstance(state.operations[index], CreateOp) and index not in state.vectors.failed


def run_of_changes(state: BatchState, index: int, in_order: bool) -> list[int]:
    """The updates and deletes to apply with the one at `index`, if writes run in order."""
    if state.changes is None or not in_order:
        return []
    # In order, nothing else runs them: after a change's fault, the rest may go together.
    return _run(state, index, _takes_change, again=True)


def _takes_change(state: BatchState, index: int) -> bool:
    return target_of(state, index) is not None


def target_of(state: BatchState, index: int) -> str | None:
    """The memory an update or delete at `index` changes; None if it is not one, or if it
    names a create of the batch that did not succeed (it then fails on its own)."""
    op = state.operations[index]
    if not isinstance(op, UpdateOp | DeleteOp):
        return None
    return state.created.get(op.id.index) if isinstance(op.id, Ref) else op.id


def new_memories(state: BatchState, indices: list[int]) -> list[ToCreate]:
    """The memories the creates at `indices` store, with their vectors; their ids were drawn
    when the batch began, so a redo one by one stores the same ids."""
    now = utc_now()
    items: list[ToCreate] = []
    for index in indices:
        op = state.operations[index]
        assert isinstance(op, CreateOp)
        items.append((op.data.build(state.new_ids[index], now), state.vectors.vectors.get(index)))
    return items


async def planned_changes(
    state: BatchState, indices: list[int], embedder: Embedder | None
) -> list[PlannedChange]:
    """The changes of the operations at `indices`, text-changing updates with the vector of
    the text they will leave: the memories are read in one call (`get_many`), and the run's
    earlier changes are applied to them here in order, so that only another batch can make a
    text stale. One embedder call for all. Raises what the read or the embedder raise."""
    now = utc_now()
    planned: list[PlannedChange] = []
    texts: dict[int, str] = {}
    memories: dict[str, Memory | None] = {}  # each target as the run will have left it
    faulted = False  # a change faults: the call's list ends there, later texts do not matter
    # Only memories whose text some update of the run changes need reading.
    read = {
        target_of(state, index)
        for index in indices
        if isinstance(op := state.operations[index], UpdateOp) and op.patch.changes_text
    }
    if embedder is not None and read:
        assert state.changes is not None
        found = await state.changes.get_many(state.tenant, sorted(i for i in read if i))
        memories.update({memory_id: found.get(memory_id) for memory_id in read if memory_id})
    for position, index in enumerate(indices):
        op, memory_id = state.operations[index], target_of(state, index)
        assert memory_id is not None and isinstance(op, UpdateOp | DeleteOp)
        if isinstance(op, DeleteOp):
            planned.append(PlannedDelete(memory_id))
            memories[memory_id] = None
            continue
        planned.append(PlannedUpdate(memory_id, op.patch, now))
        if embedder is None or faulted or memory_id not in read:
            continue
        current = memories[memory_id]
        if current is None:
            continue  # the update will find no memory: NOT_FOUND
        try:
            memories[memory_id] = changed = op.patch.apply(current, now)
        except FieldError:
            faulted = True
            continue
        if op.patch.changes_text:
            texts[position] = embedding_text(changed.title, changed.content)
    if embedder is not None and texts:
        vectors = await embed_texts(embedder, list(texts.values()))
        for (position, text), vector in zip(texts.items(), vectors, strict=True):
            change = planned[position]
            assert isinstance(change, PlannedUpdate)
            planned[position] = PlannedUpdate(change.memory_id, change.patch, now, vector, text)
    return planned


def settle_creates(state: BatchState, indices: list[int], items: list[ToCreate]) -> None:
    """Report the creates stored, as each would report itself."""
    for index, (memory, _) in zip(indices, items, strict=True):
        state.created[index] = memory.id
        _succeed(state, index, {"id": memory.id, "created_at": memory.created_at})


def settle_changes(state: BatchState, indices: list[int], outcomes: list[Outcome]) -> None:
    """Report each change applied or not found; one that faulted (the last outcome, if an
    exception) and those never reached stay to run on their own."""
    for position, (index, outcome) in enumerate(zip(indices, outcomes, strict=False)):
        memory_id = target_of(state, index)
        if isinstance(outcome, Exception):
            # This one runs alone; those after it, never tried, may go together again.
            state.rebulk.update(indices[position + 1 :])
            return
        result = state.results[index]
        if outcome is None or outcome is False:
            assert memory_id is not None
            result.attempts = 1
            result.fail(not_found(memory_id))
        elif isinstance(outcome, Memory):
            answer = {
                "id": outcome.id,
                "updated_at": outcome.updated_at,
                "version": outcome.version,
            }
            _succeed(state, index, answer)
        else:
            _succeed(state, index, {"id": memory_id, "deleted": True})
        state.settled.add(index)


def _succeed(state: BatchState, index: int, answer: dict[str, Any]) -> None:
    result = state.results[index]
    result.attempts = 1
    result.succeed(answer)
    state.settled.add(index)


def timed_out(state: BatchState, indices: list[int]) -> None:
    """The batch deadline passed while the bulk call ran: it had no effect."""
    for index in indices:
        result = state.results[index]
        result.attempts = 1
        result.fail(ran_past_deadline(state.options.timeout_ms))
        state.settled.add(index)


# Running a run -----------------------------------------------------------------------------


async def run_together(rt: Runtime, state: BatchState, index: int) -> bool:
    """Run the operation at `index` with the run it starts, if any, in one storage call;
    whether that settled it (if not, it runs on its own)."""
    if creates := run_of_creates(state, index):
        return await _timed(rt, state, creates, _create_together(rt, state, creates))
    # Writes run in order unless parallel with continue_on_error: only then may a later
    # write of the run still wait for something before the run.
    in_order = state.stops_on_failure or not rt.runs_parallel(state)
    if changes := run_of_changes(state, index, in_order):
        return await _timed(rt, state, changes, _change_together(rt, state, changes))
    return False


async def _timed(
    rt: Runtime, state: BatchState, indices: list[int], call: Coroutine[Any, Any, None]
) -> bool:
    """`_claimed`, and each operation the call settled gets an equal share of its time: the
    latency per operation that a bulk call achieved (one not settled runs, and is timed, on
    its own)."""
    started = rt.clock()
    settled = await _claimed(state, indices, call)
    share = (rt.clock() - started) / len(indices)
    for index in indices:
        if index in state.settled:
            state.results[index].seconds = share
    return settled


async def _claimed(state: BatchState, indices: list[int], call: Coroutine[Any, Any, None]) -> bool:
    claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for index in indices[1:]:
        state.claims[index] = claim
    try:
        await call
    finally:
        if not claim.done():  # done only if cancelled, which the executor's shield prevents
            claim.set_result(None)
    return indices[0] in state.settled


async def _create_together(rt: Runtime, state: BatchState, indices: list[int]) -> None:
    assert state.bulk is not None
    items = new_memories(state, indices)
    if await _bulk_call(rt, state, indices, state.bulk.create_many(state.tenant, items)):
        settle_creates(state, indices, items)


async def _change_together(rt: Runtime, state: BatchState, indices: list[int]) -> None:
    changes = state.changes
    assert changes is not None
    outcomes: list[Outcome] = []
    calling = False

    async def call() -> None:
        nonlocal calling
        # Planning (reads, one embedder call) is part of the call: bounded by the same
        # time-out, and a fault in it leaves each operation to run on its own.
        planned = await planned_changes(state, indices, rt.embedder)
        calling = True
        stop = state.stops_on_failure
        outcomes.extend(await changes.change_many(state.tenant, planned, stop_at_miss=stop))

    if await _bulk_call(rt, state, indices, call(), lambda: calling):
        settle_changes(state, indices, outcomes)


async def _bulk_call(
    rt: Runtime,
    state: BatchState,
    indices: list[int],
    call: Coroutine[Any, Any, Any],
    stored: Callable[[], bool] = lambda: True,
) -> bool:
    """Await a bulk call under the operation time-out; whether it returned. If it raised,
    it changed nothing, and its operations run on their own; if the batch deadline
    passed while storage ran it (`stored()`: its storage call had begun), they are all
    settled as timed out, and if before, the first runs alone and meets the deadline."""
    try:
        await await_until(call, rt.call_until(state))
    except DeadlineExpired:
        if rt.clock() >= state.deadline and stored():
            timed_out(state, indices)
        else:
            log.warning("bulk_call_timed_out", operations=len(indices))
        return False
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # a real cancellation of this batch
        log.error("backend_raised_cancelled", index=indices[0], type="bulk")
        return False
    except Exception as error:
        log.warning("bulk_call_failed", operations=len(indices), error=repr(error))
        return False
    return True
