"""Strict checks for decoded JSON: no coercion, and every failure names its field."""

from __future__ import annotations

import re
from typing import Any

from batchsvc.errors import FieldError


def check_keys(raw: dict[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    if raw.keys() <= allowed:  # the common case, checked in C
        return
    for key in raw:
        if key not in allowed:
            raise FieldError(
                f"{prefix}{key}",
                "unknown_field",
                f"unknown field {prefix}{key!s}; allowed: {', '.join(sorted(allowed))}",
            )


def want_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(path, "must_be_object", f"{path} must be a JSON object")
    return value


def want_string(
    value: Any, path: str, *, min_len: int = 0, max_len: int, blank: bool = True
) -> str:
    if not isinstance(value, str):
        raise FieldError(path, "must_be_string", f"{path} must be a string")
    if len(value) < min_len:
        raise FieldError(path, "too_short", f"{path} must have at least {min_len} characters")
    if len(value) > max_len:
        raise FieldError(path, "too_long", f"{path} may have at most {max_len} characters")
    if not blank and is_blank(value):
        raise FieldError(path, "blank", f"{path} must not be blank")
    return value


# White space as JSON Schema's `\s` (ECMA-262) defines it, which the OpenAPI document's
# `"pattern": "\\S"` uses: Python's str.isspace() differs (it counts the separators
# U+001C-U+001F and U+0085, and not U+FEFF), and a client validating by the document must get
# the same answer as the service.
_BLANK = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*")


def is_blank(value: str) -> bool:
    r"""Empty, or only white space (JSON Schema's `\s`)."""
    return _BLANK.fullmatch(value) is not None


def want_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(path, "must_be_boolean", f"{path} must be true or false")
    return value


def want_int(value: Any, path: str, low: int, high: int) -> int:
    # bool is an int subclass in Python; JSON true is not a number.
    if type(value) is not int:
        raise FieldError(path, "must_be_integer", f"{path} must be an integer")
    if not low <= value <= high:
        raise FieldError(path, "out_of_range", f"{path} must be between {low} and {high}")
    return value


def want_number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(path, "must_be_number", f"{path} must be a number")
    if not low <= value <= high:
        raise FieldError(path, "out_of_range", f"{path} must be between {low} and {high}")
    return float(value)


def want_choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise FieldError(path, "invalid_choice", f"{path} must be one of: {', '.join(choices)}")
    return value
