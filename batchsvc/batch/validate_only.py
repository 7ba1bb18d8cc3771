"""`validate_only`: every check an execution would make, against a simulated state, no writes.

The simulation walks the batch in order, reading from storage what the batch has not touched
yet, so ids, references, deletes earlier in the batch and merged metadata limits all count.
"""

from __future__ import annotations

import asyncio

from batchsvc.batch.deadline import DeadlineExpired, await_until
from batchsvc.batch.failures import (
    OperationFailed,
    dependency_would_fail,
    invalid,
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
    simulation = _Simulation(storage, tenant, deadline, operation_timeout)
    results = []
    for index, op in enumerate(operations):
        result = OperationResult(index=index, type=op.type)
        results.append(result)
        if asyncio.get_running_loop().time() >= deadline:
            result.skip(not_checked_at_deadline())
            continue
        try:
            await simulation.check(index, op)
        except OperationFailed as failure:
            result.fail(failure.error)
        else:
            result.succeed({"valid": True})
    return results


class _Simulation:
    """The batch's effects so far: each memory it touched as the batch would leave it."""

    def __init__(
        self, storage: MemoryOps, tenant: str, deadline: float, operation_timeout: float
    ) -> None:
        self.storage, self.tenant = storage, tenant
        self.deadline, self.operation_timeout = deadline, operation_timeout
        self.state: dict[str, Memory | None] = {}
        self.valid_creates: dict[int, str] = {}

    async def check(self, index: int, op: DecodedOperation) -> None:
        """Apply `op` to the simulated state, or raise OperationFailed as it would fail."""
        if isinstance(op, InvalidOperation):
            raise OperationFailed(invalid(op.error))
        if isinstance(op, CreateOp):
            memory = op.data.build(new_memory_id(), utc_now())
            self.state[memory.id] = memory
            self.valid_creates[index] = memory.id
            return
        if isinstance(op, SearchOp):
            return
        memory_id = self._target(op.id)
        current = await self._current(memory_id, index)
        if isinstance(op, UpdateOp):
            try:
                self.state[memory_id] = op.patch.apply(current, utc_now())
            except FieldError as error:
                raise OperationFailed(invalid(error)) from None
        elif op.type == "delete":
            self.state[memory_id] = None

    def _target(self, target: str | Ref) -> str:
        if not isinstance(target, Ref):
            return target
        if target.index not in self.valid_creates:
            raise OperationFailed(dependency_would_fail(target.index))
        return self.valid_creates[target.index]

    async def _current(self, memory_id: str, index: int) -> Memory:
        """The memory as the batch has left it so far, read from storage if not touched yet."""
        if memory_id not in self.state:
            loop = asyncio.get_running_loop()
            until = min(self.deadline, loop.time() + self.operation_timeout)
            try:
                read = self.storage.get(self.tenant, memory_id)
                self.state[memory_id] = await await_until(read, until)
            except DeadlineExpired:
                raise OperationFailed(storage_too_slow()) from None
            except BackendError as error:
                # As an execution would answer: damaged data is no reason to retry.
                raise OperationFailed(storage_failure(error, "read", index=index)) from None
        current = self.state[memory_id]
        if current is None:
            raise OperationFailed(not_found(memory_id))
        return current
