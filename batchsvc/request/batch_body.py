"""Request-level decoding of a batch body, in API.md's order, after auth and JSON parsing."""

from __future__ import annotations

import re
import secrets
from typing import Any

from attrs import frozen

from batchsvc.errors import ApiError, ErrorCode, FieldError
from batchsvc.limits import Limits
from batchsvc.request.fields import want_bool, want_int
from batchsvc.request.operations import DecodedOperation, decode_operation, raw_types

BATCH_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
OPTION_NAMES = (
    "continue_on_error",
    "max_retries",
    "timeout",
    "parallel",
    "validate_only",
    "atomic",
)


@frozen
class BatchOptions:
    continue_on_error: bool = False
    max_retries: int = 0
    timeout_ms: int = 30_000
    parallel: bool = True
    validate_only: bool = False
    atomic: bool = False


@frozen
class BatchRequest:
    operations: list[DecodedOperation]
    options: BatchOptions


def invalid_request(field: str, reason: str, message: str = "Invalid batch request") -> ApiError:
    return ApiError(ErrorCode.INVALID_BATCH_REQUEST, message, {"field": field, "reason": reason})


def decode_options(raw: Any, limits: Limits, supports_transactions: bool) -> BatchOptions:
    """`raw` is the body's `options`; pass `{}` when the body has none (null is an error)."""
    if not isinstance(raw, dict):
        raise invalid_request("options", "must_be_object", "options must be a JSON object")
    try:
        for key in raw:
            if key not in OPTION_NAMES:
                raise FieldError(
                    f"options.{key}",
                    "unknown_option",
                    f"unknown option {key!r}; allowed: {', '.join(OPTION_NAMES)}",
                )
        values: dict[str, Any] = {
            name: want_bool(raw[name], f"options.{name}")
            for name in ("continue_on_error", "parallel", "validate_only", "atomic")
            if name in raw
        }
        if "max_retries" in raw:
            values["max_retries"] = want_int(
                raw["max_retries"], "options.max_retries", 0, limits.max_retries
            )
        values["timeout_ms"] = want_int(
            raw.get("timeout", limits.default_timeout_ms),
            "options.timeout",
            1,
            limits.max_timeout_ms,
        )
    except FieldError as error:
        raise invalid_request(error.field, error.reason, error.message) from None
    options = BatchOptions(**values)
    if options.atomic and options.continue_on_error:
        raise invalid_request(
            "options.continue_on_error",
            "incompatible_with_atomic",
            "continue_on_error has no meaning with atomic: an atomic batch stops at its first "
            "failure",
        )
    if options.atomic and not supports_transactions:
        raise invalid_request(
            "options.atomic",
            "atomic_not_supported",
            "the configured storage backend cannot run atomic batches",
        )
    return options


def decode_batch(body: Any, limits: Limits, *, supports_transactions: bool) -> BatchRequest:
    """Check the body's shape and options (raising ApiError), then decode each operation alone."""
    if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
        raise invalid_request("operations", "operations_array_required")
    raw_ops: list[Any] = body["operations"]
    if not raw_ops:
        raise invalid_request("operations", "operations_empty", "operations must not be empty")
    if len(raw_ops) > limits.max_operations:
        raise ApiError(
            ErrorCode.BATCH_TOO_LARGE,
            "Batch size exceeds maximum limit",
            {"max_operations": limits.max_operations, "provided_operations": len(raw_ops)},
        )
    options = decode_options(body.get("options", {}), limits, supports_transactions)
    for key in body:
        if key not in ("operations", "options"):
            raise invalid_request(key, "unknown_field", f"unknown field {key!r} in the batch body")
    types = raw_types(raw_ops)
    return BatchRequest(
        [decode_operation(op, i, types, limits) for i, op in enumerate(raw_ops)], options
    )


def batch_id_from_header(value: str | None) -> str:
    if value is None:
        return "batch_" + secrets.token_hex(8)
    if not BATCH_ID.fullmatch(value):
        raise invalid_request(
            "X-Batch-Id",
            "invalid_batch_id",
            "X-Batch-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -",
        )
    return value
