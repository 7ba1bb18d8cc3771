"""What an operation reports when it does not succeed: an `OperationError`, each made by one
named function here, so that a message is written once and reads the same wherever it is
reported (an operation's result in a batch, a single-memory endpoint's answer, a listing, an
atomic batch's answer). `storage_failure` is the one mapping of storage faults to codes.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog
from attrs import frozen

from batchsvc.errors import ApiError, CorruptBackendError, ErrorCode, FieldError

log = structlog.get_logger("batchsvc.batch.failures")


@frozen
class OperationError:
    """The error of an operation's result: a code of the closed set, a message for a person,
    and details (an object, `{}` when there is nothing to add)."""

    code: ErrorCode
    message: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}

    def api_error(self) -> ApiError:
        """The same error deciding a whole response (a single-memory endpoint, say)."""
        return ApiError(self.code, self.message, self.details)


class OperationFailed(Exception):
    """An operation's failure, with the error its result reports."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(error.message)
        self.error = error


# Failures ----------------------------------------------------------------------------------


def invalid(error: FieldError) -> OperationError:
    """VALIDATION_ERROR: the operation is wrong at one field."""
    return OperationError(ErrorCode.VALIDATION_ERROR, error.message, error.details)


def not_found(memory_id: str) -> OperationError:
    return OperationError(ErrorCode.NOT_FOUND, f"memory {memory_id} not found", {"id": memory_id})


def dependency_failed(target: int) -> OperationError:
    """The create whose id the operation uses (`$target`) did not succeed."""
    return OperationError(
        ErrorCode.DEPENDENCY_FAILED,
        f"operation {target}, whose id this one uses, did not succeed",
        {"depends_on": target},
    )


def dependency_would_fail(target: int) -> OperationError:
    """`dependency_failed`, as a `validate_only` batch finds it."""
    return OperationError(
        ErrorCode.DEPENDENCY_FAILED,
        f"operation {target}, whose id this one uses, would not succeed",
        {"depends_on": target},
    )


def embedder_failed() -> OperationError:
    """The operation needed a vector, and the embedder did not make it."""
    return OperationError(ErrorCode.BACKEND_UNAVAILABLE, "the embedder failed; nothing changed", {})


def ran_past_deadline(timeout_ms: int) -> OperationError:
    """The batch deadline passed while storage ran the operation, which was cancelled."""
    return OperationError(
        ErrorCode.TIMEOUT,
        "the batch deadline passed while the operation ran; it had no effect",
        {"timeout_ms": timeout_ms},
    )


def ran_too_long(operation_timeout_ms: int) -> OperationError:
    """One attempt ran past the operation's own limit (retried, if retries are left)."""
    return OperationError(
        ErrorCode.TIMEOUT,
        f"the operation took longer than {operation_timeout_ms} ms; it had no effect",
        {},
    )


def storage_busy(error: Exception) -> OperationError:
    """A `TransientBackendError` (retried, if retries are left)."""
    return OperationError(ErrorCode.BACKEND_UNAVAILABLE, f"storage is busy: {error}", {})


def storage_too_slow() -> OperationError:
    """A `validate_only` batch's read of a stored memory did not finish in time."""
    return OperationError(ErrorCode.TIMEOUT, "storage did not answer in time", {})


def operation_crashed() -> OperationError:
    """The operation met a fault that is nobody's contract (a bug); it was logged."""
    return OperationError(
        ErrorCode.INTERNAL_ERROR, "an unexpected error occurred in this operation", {}
    )


def step_crashed() -> OperationError:
    """The executor itself failed while running the operation (a bug); it was logged."""
    return OperationError(ErrorCode.INTERNAL_ERROR, "an unexpected error occurred", {})


#: What was running when storage failed: an operation, a read that checks or lists (a
#: `validate_only` batch's, a listing's), or an atomic batch's transaction.
StorageCall = Literal["operation", "read", "transaction"]
#: What a client is told, by what was running: of damaged data, and of any other fault.
_STORAGE_FAULTS: dict[StorageCall, tuple[str, str]] = {
    "operation": ("the stored data is damaged; this cannot succeed", "storage failed"),
    "read": ("the stored data is damaged", "storage failed"),
    "transaction": (
        "the stored data is damaged; nothing was changed",
        "the storage backend could not commit the batch; nothing was changed",
    ),
}


def storage_failure(
    error: Exception, during: StorageCall, *, logged_as: str | None = None, **fields: Any
) -> OperationError:
    """What a client is told of a fault of storage (a `BackendError`, or any exception the
    caller counts as one). Damaged data (`CorruptBackendError`) is INTERNAL_ERROR: no retry can
    succeed until an operator repairs the store, so clients must not be told to retry; it is
    logged at error level, its message naming the store and never stored content. Any other
    fault is BACKEND_UNAVAILABLE, which an operator can clear (disk full, say), logged as
    `logged_as` when given. `fields` go to the log line."""
    damaged, failed = _STORAGE_FAULTS[during]
    if isinstance(error, CorruptBackendError):
        log.error("storage_corrupt", error=str(error), **fields)
        return OperationError(ErrorCode.INTERNAL_ERROR, damaged, {})
    if logged_as is not None:
        log.error(logged_as, error=repr(error), **fields)
    return OperationError(ErrorCode.BACKEND_UNAVAILABLE, failed, {})


# Skips -------------------------------------------------------------------------------------


def skipped_after(after: int) -> OperationError:
    """SKIPPED: the batch stopped at the failure of operation `after`."""
    return OperationError(
        ErrorCode.SKIPPED,
        f"not run: operation {after} failed and the batch stops at its first failure",
        {"after_index": after},
    )


def skipped_at_deadline(timeout_ms: int) -> OperationError:
    """The batch deadline passed before the operation could start."""
    return OperationError(
        ErrorCode.TIMEOUT, "not run: the batch deadline passed first", {"timeout_ms": timeout_ms}
    )


def skipped_waiting_for_transaction(timeout_ms: int) -> OperationError:
    """An atomic batch's deadline passed before it had its transaction."""
    return OperationError(
        ErrorCode.TIMEOUT,
        "not run: the batch deadline passed while waiting for the transaction",
        {"timeout_ms": timeout_ms},
    )


def not_checked_at_deadline() -> OperationError:
    """A `validate_only` batch's deadline passed before the operation was checked."""
    return OperationError(ErrorCode.TIMEOUT, "not checked: the batch deadline passed first", {})
