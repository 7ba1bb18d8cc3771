"""The state of one batch while it runs, and the small rules about its results."""

from __future__ import annotations

import asyncio

from batchsvc.batch.embeddings import BatchVectors
from batchsvc.batch.failures import skipped_after, skipped_waiting_for_transaction
from batchsvc.batch.results import BatchResult, OperationResult
from batchsvc.models import new_memory_id
from batchsvc.request.batch_body import BatchOptions, BatchRequest
from batchsvc.request.operations import CreateOp
from batchsvc.storage import ChangesMany, CreatesMany, MemoryOps


class BatchState:
    """The state of one batch while it runs."""

    def __init__(
        self,
        tenant: str,
        request: BatchRequest,
        ops: MemoryOps,
        deadline: float,
        vectors: BatchVectors,
    ) -> None:
        self.tenant = tenant
        self.operations = request.operations
        self.options: BatchOptions = request.options
        self.ops = ops
        self.deadline = deadline
        self.results = [
            OperationResult(index=i, type=op.type) for i, op in enumerate(request.operations)
        ]
        self.created: dict[int, str] = {}
        # Ids for every create, drawn in request order before anything runs: ids sort by
        # creation, so listings and search ties follow the request whatever finishes first.
        self.new_ids = {
            index: new_memory_id()
            for index, op in enumerate(request.operations)
            if isinstance(op, CreateOp)
        }
        self.stopped_after: int | None = None
        self.vectors = vectors
        #: The ops' bulk calls, if they have them (see `batchsvc.batch.bulk`).
        self.bulk: CreatesMany | None = ops if isinstance(ops, CreatesMany) else None
        self.changes: ChangesMany | None = ops if isinstance(ops, ChangesMany) else None
        #: Operations begun; those a bulk call took with an earlier one (the future is done
        #: once the call is); those it settled (the rest run on their own).
        self.started: set[int] = set()
        self.claims: dict[int, asyncio.Future[None]] = {}
        self.settled: set[int] = set()
        #: Left unsettled only because a change before them faulted: may go together again.
        self.rebulk: set[int] = set()

    @property
    def stops_on_failure(self) -> bool:
        return self.options.atomic or not self.options.continue_on_error


def all_timed_out(batch_id: str, request: BatchRequest) -> BatchResult:
    results = [OperationResult(index=i, type=op.type) for i, op in enumerate(request.operations)]
    for result in results:
        result.skip(skipped_waiting_for_transaction(request.options.timeout_ms))
    return BatchResult(batch_id, results, atomic_failed_index=0)


def note_failure(state: BatchState, index: int) -> None:
    """The batch stops at its lowest failed index; in parallel, failures arrive in any order."""
    if state.stops_on_failure and (state.stopped_after is None or index < state.stopped_after):
        state.stopped_after = index


def skip_after(result: OperationResult, after: int) -> None:
    result.skip(skipped_after(after))
    result.attempts = 0


def first_unsuccessful(results: list[OperationResult]) -> int:
    return next(r.index for r in results if r.status in ("failed", "skipped"))
