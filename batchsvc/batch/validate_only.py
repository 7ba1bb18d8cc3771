"""`validate_only`: every check an execution would make, against a simulated state, no writes.

The simulation walks the batch in order, reading from storage what the batch has not touched
yet, so ids, references, deletes earlier in the batch and merged metadata limits all count.
"""

from __future__ import annotations

import asyncio

from batchsvc.batch.deadline import DeadlineExpired, await_until
from batchsvc.batch.failures import (
    dependency_would_fail,
    not_checked_at_deadline,
    not_found,
    storage_failure,
    storage_too_slow,
)
from batchsvc.batch.results import OperationResult
from batchsvc.errors import BackendError, FieldError
from batchsvc.models import Memory, new_memory_id, utc_now
from batchsvc.request.operations import (
    CreateOp,
    DecodedOperation,
    InvalidOperation,
    Ref,
    SearchOp,
    UpdateOp,
)
from batchsvc.storage import MemoryOps


async def validate_batch(
    storage: MemoryOps,
    tenant: str,
    operations: list[DecodedOperation],
    deadline: float,
    operation_timeout: float,
) -> list[OperationResult]:
    """`deadline` is on the loop's clock; reads of stored memories obey it and
    `operation_timeout` (seconds) like the operations of a real execution, and a failing backend
    fails the operation that needed it, as it would in a real execution."""
    loop = asyncio.get_running_loop()
    state: dict[str, Memory | None] = {}
    valid_creates: dict[int, str] = {}
    results = []
    for index, op in enumerate(operations):
        result = OperationResult(index=index, type=op.type)
        results.append(result)
        if loop.time() >= deadline:
            result.skip(not_checked_at_deadline())
            continue
        if isinstance(op, InvalidOperation):
            result.fail_validation(op.error)
            continue
        if isinstance(op, CreateOp):
            memory = op.data.build(new_memory_id(), utc_now())
            state[memory.id] = memory
            valid_creates[index] = memory.id
        elif not isinstance(op, SearchOp):
            if isinstance(op.id, Ref):
                if op.id.index not in valid_creates:
                    result.fail(dependency_would_fail(op.id.index))
                    continue
                memory_id = valid_creates[op.id.index]
            else:
                memory_id = op.id
            if memory_id not in state:
                until = min(deadline, loop.time() + operation_timeout)
                try:
                    state[memory_id] = await await_until(storage.get(tenant, memory_id), until)
                except DeadlineExpired:
                    result.fail(storage_too_slow())
                    continue
                except BackendError as error:
                    # As a run would answer: damaged data is no reason to retry.
                    result.fail(storage_failure(error, "read", index=index))
                    continue
            current = state[memory_id]
            if current is None:
                result.fail(not_found(memory_id))
                continue
            if isinstance(op, UpdateOp):
                try:
                    state[memory_id] = op.patch.apply(current, utc_now())
                except FieldError as error:
                    result.fail_validation(error)
                    continue
            elif op.type == "delete":
                state[memory_id] = None
        result.succeed({"valid": True})
    return results
