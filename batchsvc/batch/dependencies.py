"""Which operations of a batch must wait for which, so that `parallel` changes only the timing.

An operation on an id waits for every earlier operation on the same id or on the create it
references; a search waits for every earlier write, and a write for every earlier search.
Invalid operations touch nothing, so nothing waits for them.
"""

from __future__ import annotations

from batchsvc.request.operations import CreateOp, DecodedOperation, InvalidOperation, Ref, SearchOp


def _key(op: DecodedOperation, index: int) -> str | None:
    if isinstance(op, CreateOp):
        return f"${index}"
    if isinstance(op, InvalidOperation | SearchOp):
        return None
    return f"${op.id.index}" if isinstance(op.id, Ref) else op.id


def is_write(op: DecodedOperation) -> bool:
    return isinstance(op, CreateOp) or op.type in ("update", "delete")


def waits_for_all_earlier(operations: list[DecodedOperation], stops_on_failure: bool) -> list[bool]:
    """Which operations wait for every earlier one to finish (the scheduler tracks that as one
    prefix, not as n^2 edges).

    When the batch stops at its first failure, a write may take effect only once nothing before
    it has failed. Reads and searches still run early; they change nothing, so one that turns
    out to follow a failure is reported skipped as if it never ran, and the results stay those
    of a sequential execution.
    """
    return [stops_on_failure and is_write(op) for op in operations]


def dependencies(operations: list[DecodedOperation]) -> list[set[int]]:
    """For each operation, the earlier ones it must wait for."""
    deps: list[set[int]] = []
    last_on_key: dict[str, int] = {}
    writes: list[int] = []
    searches: list[int] = []
    for index, op in enumerate(operations):
        waits: set[int] = set()
        if isinstance(op, SearchOp):
            waits.update(writes)
            searches.append(index)
        elif not isinstance(op, InvalidOperation):
            key = _key(op, index)
            if key is not None and key in last_on_key:
                # A chain: the previous op on this key already waits for the ones before it.
                waits.add(last_on_key[key])
            if key is not None:
                last_on_key[key] = index
            if is_write(op):
                waits.update(searches)
                writes.append(index)
        deps.append(waits)
    return deps
