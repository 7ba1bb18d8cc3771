"""Error codes and the exceptions that carry them.

The codes are a closed set (API.md): every error a client can see is named here, with the
HTTP status it gets when it decides a whole response.

Every exception that crosses a plugin boundary lives here too, whichever side raises it: a
backend or an embedder raises it for the core to catch (`BackendError` and its kinds,
`TextChanged`, `OptionError`, `ConfigError`), or the core raises it through a plugin's code
(`FieldError` from `MemoryPatch.apply`, `EmbeddingFailed` from the `embed` given to
`DurableVectors.reembed`). A plugin imports them from here, and nothing else of the core's
internals to know what to raise or what may pass through it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHORIZED = "UNAUTHORIZED"
    RATE_LIMITED = "RATE_LIMITED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_BATCH_REQUEST = "INVALID_BATCH_REQUEST"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    ATOMIC_BATCH_FAILED = "ATOMIC_BATCH_FAILED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
    SKIPPED = "SKIPPED"
    TIMEOUT = "TIMEOUT"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"


# The status a code gets when it decides a whole response (single-memory endpoints, and
# request-level errors). Inside a batch, operation errors never change the batch's status.
STATUS_FOR_CODE: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_BATCH_REQUEST: 400,
    ErrorCode.BATCH_TOO_LARGE: 413,
    ErrorCode.ATOMIC_BATCH_FAILED: 422,
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.DEPENDENCY_FAILED: 424,
    ErrorCode.SKIPPED: 409,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
}


class ApiError(Exception):
    """An error that decides a whole HTTP response, with the spec's envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status if status is not None else STATUS_FOR_CODE[code]
        self.headers = headers or {}

    @classmethod
    def from_field_error(cls, error: FieldError) -> ApiError:
        return cls(
            ErrorCode.VALIDATION_ERROR,
            error.message,
            error.details,
        )

    def envelope(self) -> dict[str, Any]:
        return {
            "success": False,
            "error": {"code": str(self.code), "message": self.message, "details": self.details},
        }


class FieldError(Exception):
    """Input that is wrong at one field: `field` is its path, `reason` a stable snake_case word."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message

    @property
    def details(self) -> dict[str, Any]:
        """The `error.details` a VALIDATION_ERROR carries, wherever it is reported."""
        return {"field": self.field, "reason": self.reason}


class BackendError(Exception):
    """Raised by a backend for a fault that is not the caller's."""


class TransientBackendError(BackendError):
    """The backend is busy or briefly unavailable; the same call may succeed if retried."""


class CorruptBackendError(BackendError):
    """The backend's stored data is damaged (SQLite: "database disk image is malformed").

    Unlike other backend faults, no retry, now or later, can succeed until an operator
    repairs or restores the store, so clients must not be told to retry: the executor answers
    `INTERNAL_ERROR` (never retried), not `BACKEND_UNAVAILABLE`, and logs it at error level.
    The message names the damaged store (a file, say) and never holds stored content."""


class CannotStart(Exception):
    """The service cannot start (its storage or embedder did not open). The message says what
    is wrong and what to do; `batchsvc serve` prints it and exits 2, as for a bad config."""


class TextChanged(Exception):
    """From `MemoryOps.update` given `vector_text`: the memory's text once patched is not the
    text its vector was made from (a concurrent write changed the title or content since the
    caller read it). Nothing changed; the caller reads, embeds and tries again."""


class EmbeddingFailed(Exception):
    """The embedder raised, or returned something that is not one vector per text. Raised by
    the core's `embed` (`batchsvc.batch.embeddings.embed_texts`), also from inside a backend's
    `DurableVectors.reembed`, which lets it go out as it is."""


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the field. A plugin
    raises it from `from_options` for a fault that no option would fix (the minilm embedder's
    missing packages), naming the field at fault in the same style (`$.embedder.name: ...`)."""


class OptionError(ValueError):
    """A plugin option that cannot be used: `option` is its name in the plugin's options table,
    `problem` what is wrong with it. Raised by `batchsvc.plugins.options.read_options`; the
    service reports it with the option's path in the config file, as for every config error:
    `$.storage.options.busy_timeout_ms: must be at least 0, got -1`. A ValueError, which is what
    the plugin contracts ask `from_options` to raise (any ValueError is reported, without the
    option's name in the path)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


__all__ = [
    "ApiError",
    "BackendError",
    "CannotStart",
    "ConfigError",
    "CorruptBackendError",
    "EmbeddingFailed",
    "ErrorCode",
    "FieldError",
    "OptionError",
    "TextChanged",
    "TransientBackendError",
]
