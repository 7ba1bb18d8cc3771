"""The batch executor: runs decoded operations against storage, truthfully. No HTTP here.

It owns the options of API.md: ordering under `parallel`, `continue_on_error`, retries of
transient faults with backoff and jitter, the batch deadline, `validate_only` and `atomic`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from attrs import evolve

from batchsvc.batch.attempts import call_storage
from batchsvc.batch.bulk import (
    new_memories,
    planned_changes,
    run_of_changes,
    run_of_creates,
    settle_changes,
    settle_creates,
    timed_out,
)
from batchsvc.batch.deadline import DeadlineExpired, await_until
from batchsvc.batch.embeddings import (
    BatchVectors,
    embed_batch,
)
from batchsvc.batch.results import BatchResult, OperationResult
from batchsvc.batch.scheduler import ParallelScheduler
from batchsvc.batch.state import (
    BatchState,
    OperationFailed,
    all_timed_out,
    first_unsuccessful,
    note_failure,
    skip_after,
)
from batchsvc.batch.validate_only import validate_batch
from batchsvc.embedding import Embedder
from batchsvc.errors import (
    ApiError,
    BackendError,
    CorruptBackendError,
    ErrorCode,
    FieldError,
    TransientBackendError,
)
from batchsvc.limits import Limits
from batchsvc.models import SearchMode
from batchsvc.request.batch_body import BatchRequest
from batchsvc.request.operations import (
    CreateOp,
    DecodedOperation,
    InvalidOperation,
    Operation,
    Ref,
    SearchOp,
)
from batchsvc.storage import Outcome, Storage

log = structlog.get_logger("batchsvc.batch.executor")

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


class _Retryable(Exception):
    """A failed attempt that a retry may fix; carries the error to report if none does."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
        self._sleep = sleep
        self._jitter = jitter

    @property
    def has_embedder(self) -> bool:
        """Whether semantic and hybrid search exist: an embedder, and a backend for vectors."""
        return self.embedder is not None and self.storage.supports_vectors

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
        if self.embedder is not None and self.has_embedder:
            vectors = await embed_batch(
                self.embedder, request.operations, self._loop_time(deadline)
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
        except CorruptBackendError as error:
            log.error("storage_corrupt", error=str(error))
            raise ApiError(
                ErrorCode.INTERNAL_ERROR, "the stored data is damaged; nothing was changed"
            ) from error
        except (BackendError, OSError) as error:
            log.error("atomic_commit_failed", error=repr(error))
            raise ApiError(
                ErrorCode.BACKEND_UNAVAILABLE,
                "the storage backend could not commit the batch; nothing was changed",
            ) from error
        assert state is not None
        return BatchResult(batch_id, state.results)

    # Scheduling -------------------------------------------------------------------------------

    async def _schedule(self, state: BatchState) -> None:
        if not self._runs_parallel(state):
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
            # Reads and searches run ahead of a failure that a sequential run would have
            # stopped at (writes wait, see plan.py). They changed nothing, so they are
            # reported as a sequential run reports them: skipped, after the first failure.
            for result in state.results[state.stopped_after + 1 :]:
                if not (result.error and result.error.code is ErrorCode.TIMEOUT):
                    skip_after(result, state.stopped_after)

    def _crashed(self, state: BatchState, index: int, error: Exception) -> None:
        log.error("scheduler_step_crashed", index=index, error=repr(error))
        state.results[index].fail(ErrorCode.INTERNAL_ERROR, "an unexpected error occurred", {})
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
            result.skip(
                ErrorCode.TIMEOUT,
                "not run: the batch deadline passed first",
                {"timeout_ms": state.options.timeout_ms},
            )
            return
        if state.stopped_after is not None and index > state.stopped_after:
            skip_after(result, state.stopped_after)
            return
        state.started.add(index)
        if not await self._together(state, index):
            await self._execute(state, index)
        if result.status == "failed":
            note_failure(state, index)

    async def _together(self, state: BatchState, index: int) -> bool:
        """Run the operation at `index` with the run it starts, if any, in one storage call
        (`batchsvc.batch.bulk`); whether that settled it (if not, it runs on its own)."""
        if creates := run_of_creates(state, index):
            return await self._claimed(state, creates, self._create_together(state, creates))
        # Writes run in order unless parallel with continue_on_error: only then may a later
        # write of the run still wait for something before the run.
        in_order = state.stops_on_failure or not self._runs_parallel(state)
        if changes := run_of_changes(state, index, in_order):
            return await self._claimed(state, changes, self._change_together(state, changes))
        return False

    async def _claimed(
        self, state: BatchState, indices: list[int], call: Coroutine[Any, Any, None]
    ) -> bool:
        claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for index in indices[1:]:
            state.claims[index] = claim
        try:
            await call
        finally:
            if not claim.done():  # done only if cancelled, which the shield above prevents
                claim.set_result(None)
        return indices[0] in state.settled

    async def _create_together(self, state: BatchState, indices: list[int]) -> None:
        assert state.bulk is not None
        items = new_memories(state, indices)
        if await self._bulk_call(state, indices, state.bulk.create_many(state.tenant, items)):
            settle_creates(state, indices, items)

    async def _change_together(self, state: BatchState, indices: list[int]) -> None:
        changes = state.changes
        assert changes is not None
        embedder = self.embedder if self.has_embedder else None
        outcomes: list[Outcome] = []
        calling = False

        async def call() -> None:
            nonlocal calling
            # Planning (reads, one embedder call) is part of the call: bounded by the same
            # time-out, and a fault in it leaves each operation to run on its own.
            planned = await planned_changes(state, indices, embedder)
            calling = True
            stop = state.stops_on_failure
            outcomes.extend(await changes.change_many(state.tenant, planned, stop_at_miss=stop))

        if await self._bulk_call(state, indices, call(), lambda: calling):
            settle_changes(state, indices, outcomes)

    async def _bulk_call(
        self,
        state: BatchState,
        indices: list[int],
        call: Coroutine[Any, Any, Any],
        stored: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Await a bulk call under the operation time-out; whether it returned. If it raised,
        it changed nothing, and its operations run on their own; if the batch deadline
        passed while storage ran it (`stored()`: its storage call had begun), they are all
        settled as timed out, and if before, the first runs alone and meets the deadline."""
        op_deadline = self._clock() + self.limits.operation_timeout_ms / 1000
        until = self._loop_time(min(op_deadline, state.deadline))
        try:
            await await_until(call, until)
        except DeadlineExpired:
            if self._clock() >= state.deadline and stored():
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

    def _runs_parallel(self, state: BatchState) -> bool:
        return state.options.parallel and self.limits.max_parallel > 1

    async def _execute(self, state: BatchState, index: int) -> None:
        op = state.operations[index]
        result = state.results[index]
        if isinstance(op, InvalidOperation):
            result.fail_validation(op.error)
            return
        if index in state.vectors.failed:
            result.fail(ErrorCode.BACKEND_UNAVAILABLE, "the embedder failed; nothing changed", {})
            return
        try:
            memory_id = self._resolve(state, op)
            result.succeed(await self._attempts(state, op, memory_id, result))
        except OperationFailed as failure:
            result.fail(failure.code, failure.message, failure.details)

    def _resolve(self, state: BatchState, op: Operation) -> str | None:
        if isinstance(op, CreateOp | SearchOp):
            return None
        if isinstance(op.id, Ref):
            target = op.id.index
            if target not in state.created:
                raise OperationFailed(
                    ErrorCode.DEPENDENCY_FAILED,
                    f"operation {target}, whose id this one uses, did not succeed",
                    {"depends_on": target},
                )
            return state.created[target]
        return op.id

    async def _attempts(
        self, state: BatchState, op: Operation, memory_id: str | None, result: OperationResult
    ) -> dict[str, Any]:
        # A create keeps its id across attempts: a failed attempt had no effect, so reusing
        # it cannot collide, and the client sees one id whatever happened.
        new_id = state.new_ids.get(result.index)
        while True:
            result.attempts += 1
            try:
                return await self._attempt(state, op, memory_id, new_id, result.index)
            except _Retryable as fault:
                delay = self._backoff(result.attempts)
                last = result.attempts > state.options.max_retries
                if last or self._clock() + delay >= state.deadline:
                    raise OperationFailed(
                        fault.code, fault.message, {"attempts": result.attempts}
                    ) from None
                await self._sleep(delay)

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, base * 2^(attempts-1)], capped."""
        ceiling: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1))
        return ceiling * self._jitter()

    async def _attempt(
        self,
        state: BatchState,
        op: Operation,
        memory_id: str | None,
        new_id: str | None,
        index: int,
    ) -> dict[str, Any]:
        op_deadline = self._clock() + self.limits.operation_timeout_ms / 1000
        until = self._loop_time(min(op_deadline, state.deadline))
        try:
            embedder = self.embedder if self.has_embedder else None
            call = call_storage(state, op, memory_id, new_id, index, embedder)
            return await await_until(call, until)
        except DeadlineExpired:
            if self._clock() >= state.deadline:
                raise OperationFailed(
                    ErrorCode.TIMEOUT,
                    "the batch deadline passed while the operation ran; it had no effect",
                    {"timeout_ms": state.options.timeout_ms},
                ) from None
            raise _Retryable(
                ErrorCode.TIMEOUT,
                f"the operation took longer than {self.limits.operation_timeout_ms} ms; "
                "it had no effect",
            ) from None
        except TransientBackendError as error:
            raise _Retryable(ErrorCode.BACKEND_UNAVAILABLE, f"storage is busy: {error}") from None
        except FieldError as error:
            raise OperationFailed(
                ErrorCode.VALIDATION_ERROR,
                error.message,
                error.details,
            ) from None
        except CorruptBackendError as error:
            # Damaged data: no retry can succeed, so not BACKEND_UNAVAILABLE, which clients
            # retry. The message names the store, never stored content.
            log.error("storage_corrupt", index=index, error=str(error))
            raise OperationFailed(
                ErrorCode.INTERNAL_ERROR, "the stored data is damaged; this cannot succeed", {}
            ) from None
        except BackendError as error:
            log.error("backend_error", index=index, error=repr(error))
            raise OperationFailed(ErrorCode.BACKEND_UNAVAILABLE, "storage failed", {}) from None
        except OperationFailed:
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # a real cancellation of this batch: let it unwind
            # The backend raised CancelledError of its own accord: a fault in it, not ours.
            log.error("backend_raised_cancelled", index=index, type=op.type)
            raise OperationFailed(
                ErrorCode.INTERNAL_ERROR, "an unexpected error occurred in this operation", {}
            ) from None
        except Exception:
            log.exception("operation_crashed", index=index, type=op.type)
            raise OperationFailed(
                ErrorCode.INTERNAL_ERROR, "an unexpected error occurred in this operation", {}
            ) from None

    def _loop_time(self, moment: float) -> float:
        """`moment` on our clock as a time on the loop's clock, which asyncio timeouts read."""
        return asyncio.get_running_loop().time() + (moment - self._clock())
