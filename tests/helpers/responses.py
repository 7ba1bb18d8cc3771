"""What the API answers, whatever the endpoint: the spec's error envelope, and the shapes of
the ids it makes."""

from __future__ import annotations

import re
from typing import Any

#: A well-formed memory id that no test ever creates.
MISSING = "mem_0000000000000000"
MEMORY_ID = re.compile(r"mem_[0-9a-f]{16}")
REQUEST_ID = re.compile(r"req_[0-9a-f]{16}")
#: RFC 3339 in UTC, to the second, as the service writes every time.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def assert_error(body: Any, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec's error envelope, exactly: `{success: false, error: {code, message, details}}`.

    Returns `details`; when `details` is given it must match exactly."""
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if details is not None:
        assert error["details"] == details, error
    found: dict[str, Any] = error["details"]
    return found
