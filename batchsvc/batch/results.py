"""What a batch reports: one result per operation, in request order, and the totals."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from attrs import define, frozen

from batchsvc.errors import ErrorCode, FieldError

Status = Literal["success", "failed", "skipped", "rolled_back"]
SUMMARY_KEYS = {
    "create": "creates",
    "read": "reads",
    "update": "updates",
    "delete": "deletes",
    "search": "searches",
}


@frozen
class OperationError:
    code: ErrorCode
    message: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


@define
class OperationResult:
    index: int
    type: str | None
    status: Status = "skipped"
    result: dict[str, Any] | None = None
    error: OperationError | None = None
    # Calls made to storage for this operation: 0 when it never reached storage.
    attempts: int = 0

    def succeed(self, result: dict[str, Any]) -> None:
        self.status, self.result, self.error = "success", result, None

    def fail(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None) -> None:
        self.status, self.result = "failed", None
        self.error = OperationError(code, message, details or {})

    def fail_validation(self, error: FieldError) -> None:
        self.fail(
            ErrorCode.VALIDATION_ERROR,
            error.message,
            error.details,
        )

    def skip(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None) -> None:
        self.status, self.result = "skipped", None
        self.error = OperationError(code, message, details or {})

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "type": self.type, "status": self.status}
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error.to_json()
        body["attempts"] = self.attempts
        return body


@define
class BatchResult:
    batch_id: str
    operations: list[OperationResult]
    #: Set when an atomic batch was rolled back: the index of the operation that failed.
    atomic_failed_index: int | None = None

    @property
    def all_succeeded(self) -> bool:
        return all(op.status == "success" for op in self.operations)

    def to_json(self, execution_time_ms: int) -> dict[str, Any]:
        counts = Counter(op.status for op in self.operations)
        summary = {name: 0 for name in SUMMARY_KEYS.values()}
        for op in self.operations:
            if op.status == "success" and op.type in SUMMARY_KEYS:
                summary[SUMMARY_KEYS[op.type]] += 1
        return {
            "batch_id": self.batch_id,
            "processed": counts["success"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "rolled_back": counts["rolled_back"],
            "total": len(self.operations),
            "execution_time": execution_time_ms,
            "operations": [op.to_json() for op in self.operations],
            "summary": summary,
        }
