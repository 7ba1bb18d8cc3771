"""The batch executor: runs decoded operations against storage, truthfully. No HTTP here.

It owns the options of API.md: ordering under `parallel`, `continue_on_error`, the batch
deadline, `validate_only` and `atomic`. Each operation's turn goes to a bulk call with the run
it starts (`bulk.run_together`) or runs on its own with its retries (`attempts.run_alone`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable

import structlog
from attrs import evolve

from batchsvc.batch.attempts import run_alone
from batchsvc.batch.bulk import run_together
from batchsvc.batch.embeddings import (
    BatchVectors,
    embed_batch,
)
from batchsvc.batch.failures import skipped_at_deadline, step_crashed, storage_failure
from batchsvc.batch.results import BatchResult
from batchsvc.batch.runtime import Runtime
from batchsvc.batch.scheduler import ParallelScheduler
from batchsvc.batch.state import (
    BatchState,
    all_timed_out,
    first_unsuccessful,
    note_failure,
    skip_after,
)
from batchsvc.batch.validate_only import validate_batch
from batchsvc.embedding import Embedder
from batchsvc.errors import (
    BackendError,
    ErrorCode,
    FieldError,
)
from batchsvc.limits import Limits
from batchsvc.models import SearchMode
from batchsvc.request.batch_body import BatchRequest
from batchsvc.request.operations import (
    DecodedOperation,
    InvalidOperation,
    SearchOp,
)
from batchsvc.storage import Storage

log = structlog.get_logger("batchsvc.batch.executor")


class _Rollback(Exception):
    """Raised inside an atomic batch's transaction to undo it."""


class BatchExecutor:
    """Runs batches for one storage backend. Safe to share between concurrent requests."""

    def __init__(
        self,
        storage: Storage,
        limits: Limits,
        *,
        embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.storage = storage
        self.limits = limits
        self.embedder = embedder
        self._clock = clock
        semantic = embedder is not None and storage.supports_vectors
        self._rt = Runtime(storage, limits, embedder if semantic else None, clock, sleep, jitter)

    @property
    def has_embedder(self) -> bool:
        """Whether semantic and hybrid search exist: an embedder, and a backend for vectors."""
        return self._rt.embedder is not None

    def check_mode(self, operations: list[DecodedOperation]) -> list[DecodedOperation]:
        """Resolve each search's mode; without an embedder only lexical search exists."""
        checked: list[DecodedOperation] = []
        for op in operations:
            if isinstance(op, SearchOp):
                op = self._resolve_mode(op)
            checked.append(op)
        return checked

    def _resolve_mode(self, op: SearchOp) -> DecodedOperation:
        if not op.mode_given:
            mode: SearchMode = "hybrid" if self.has_embedder else "lexical"
            return evolve(op, query=evolve(op.query, mode=mode))
        if op.query.mode != "lexical" and not self.has_embedder:
            return InvalidOperation(
                "search",
                FieldError(
                    "options.mode",
                    "embedder_not_configured",
                    f"mode {op.query.mode!r} needs an embedder and a backend that stores "
                    "vectors, and this service has not both; use mode 'lexical'",
                ),
            )
        return op

    async def execute(
        self, tenant: str, request: BatchRequest, batch_id: str, started: float | None = None
    ) -> BatchResult:
        """Run the batch; `started` is the clock reading at the request's arrival."""
        start = self._clock() if started is None else started
        deadline = start + request.options.timeout_ms / 1000
        request = evolve(request, operations=self.check_mode(request.operations))
        if request.options.validate_only:
            results = await validate_batch(
                self.storage,
                tenant,
                request.operations,
                self._loop_time(deadline),
                self.limits.operation_timeout_ms / 1000,
            )
            return BatchResult(batch_id, results)
        vectors = BatchVectors()
        if self._rt.embedder is not None:  # semantic search is on
            vectors = await embed_batch(
                self._rt.embedder, request.operations, self._loop_time(deadline)
            )
        if request.options.atomic:
            return await self._run_atomic(tenant, request, batch_id, deadline, vectors)
        state = BatchState(tenant, request, self.storage, deadline, vectors)
        await self._schedule(state)
        return BatchResult(batch_id, state.results)

    async def _run_atomic(
        self,
        tenant: str,
        request: BatchRequest,
        batch_id: str,
        deadline: float,
        vectors: BatchVectors,
    ) -> BatchResult:
        state: BatchState | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    # Waiting for the transaction (another atomic batch of this tenant may
                    # hold it) counts against this batch's deadline like anything else.
                    async with asyncio.timeout_at(self._loop_time(deadline)):
                        tx = await stack.enter_async_context(self.storage.transaction(tenant))
                except TimeoutError:
                    return all_timed_out(batch_id, request)
                state = BatchState(tenant, request, tx, deadline, vectors)
                await self._schedule(state)
                if not all(r.status == "success" for r in state.results):
                    raise _Rollback
        except _Rollback:
            assert state is not None
            for result in state.results:
                if result.status == "success":
                    result.status, result.result = "rolled_back", None
            # The operation whose failure stopped the batch (the after_index of the skipped
            # ones), not the first skipped one, which in parallel can sit before it; only a
            # deadline leaves nothing but skipped operations.
            failed = state.stopped_after
            if failed is None:
                failed = first_unsuccessful(state.results)
            return BatchResult(batch_id, state.results, atomic_failed_index=failed)
        except (BackendError, OSError) as error:
            failure = storage_failure(error, "transaction", logged_as="atomic_commit_failed")
            raise failure.api_error() from error
        assert state is not None
        return BatchResult(batch_id, state.results)

    # Scheduling -------------------------------------------------------------------------------

    async def _schedule(self, state: BatchState) -> None:
        if not self._rt.runs_parallel(state):
            for index in range(len(state.operations)):
                await self._step(state, index)
            return
        scheduler = ParallelScheduler(
            state.operations,
            functools.partial(self._step, state),
            functools.partial(self._crashed, state),
            width=self.limits.max_parallel,
            stops_on_failure=state.stops_on_failure,
        )
        await scheduler.execute()
        if state.stopped_after is not None:
            # Reads and searches run ahead of a failure that a sequential execution would
            # have stopped at (writes wait, see dependencies.py). They changed nothing, so they are
            # reported as a sequential execution reports them: skipped, after the first failure.
            for result in state.results[state.stopped_after + 1 :]:
                if not (result.error and result.error.code is ErrorCode.TIMEOUT):
                    skip_after(result, state.stopped_after)

    def _crashed(self, state: BatchState, index: int, error: Exception) -> None:
        log.error("scheduler_step_crashed", index=index, error=repr(error))
        state.results[index].fail(step_crashed())
        note_failure(state, index)

    async def _step(self, state: BatchState, index: int) -> None:
        """Run operation `index`, or skip it if the batch has stopped or its deadline passed."""
        result = state.results[index]
        claim = state.claims.get(index)
        # Taken by the bulk call of an earlier operation: done already in any order but the
        # parallel one of `continue_on_error` (where this waits). If the call did not settle
        # this operation, it runs on its own, as it would have. Shielded: cancelling this
        # waiter (the batch is being cancelled) must not cancel the future others wait on.
        if claim is not None:
            await asyncio.shield(claim)
            if index in state.settled:
                if result.status == "failed":
                    note_failure(state, index)
                return
        # The deadline first: an operation not started by then is TIMEOUT (API.md), also when
        # the operation that stopped the batch was itself cut by the deadline.
        if self._clock() >= state.deadline:
            result.skip(skipped_at_deadline(state.options.timeout_ms))
            return
        if state.stopped_after is not None and index > state.stopped_after:
            skip_after(result, state.stopped_after)
            return
        state.started.add(index)
        started = self._clock()
        if not await run_together(self._rt, state, index):
            await run_alone(self._rt, state, index)
        if result.seconds is None:  # else a bulk call that settled it gave it its share
            result.seconds = self._clock() - started
        if result.status == "failed":
            note_failure(state, index)

    def _loop_time(self, moment: float) -> float:
        return self._rt.loop_time(moment)
