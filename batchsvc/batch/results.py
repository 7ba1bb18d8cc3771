"""What a batch reports: one result per operation, in request order, and the totals."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from attrs import define, field

from batchsvc.batch.failures import OperationError, invalid
from batchsvc.errors import FieldError

Status = Literal["success", "failed", "skipped", "rolled_back"]
SUMMARY_KEYS = {
    "create": "creates",
    "read": "reads",
    "update": "updates",
    "delete": "deletes",
    "search": "searches",
}


@define
class OperationResult:
    index: int
    type: str | None
    status: Status = "skipped"
    result: dict[str, Any] | None = None
    error: OperationError | None = None
    # Calls made to storage for this operation: 0 when it never reached storage.
    attempts: int = 0
    #: How long the operation ran, from its turn to its result (its share of a bulk call):
    #: None when it never ran. For the metrics only, never in a response.
    seconds: float | None = field(default=None, eq=False, repr=False)

    def succeed(self, result: dict[str, Any]) -> None:
        self.status, self.result, self.error = "success", result, None

    def fail(self, error: OperationError) -> None:
        """Failed with `error` (made in `batchsvc.batch.failures`)."""
        self.status, self.result, self.error = "failed", None, error

    def fail_validation(self, error: FieldError) -> None:
        self.fail(invalid(error))

    def skip(self, error: OperationError) -> None:
        """Not run, for the reason `error` gives."""
        self.status, self.result, self.error = "skipped", None, error

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
