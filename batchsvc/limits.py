"""Every limit of API.md in one place. The spec's values are the defaults; config changes them."""

from __future__ import annotations

from typing import Any

import orjson
from attrs import frozen

from batchsvc.errors import FieldError


@frozen
class Limits:
    max_operations: int = 100
    max_body_bytes: int = 10 * 1024 * 1024
    default_timeout_ms: int = 30_000
    max_timeout_ms: int = 60_000
    max_retries: int = 10
    max_content_chars: int = 100_000
    max_title_chars: int = 500
    max_metadata_bytes: int = 16 * 1024
    max_metadata_depth: int = 8
    max_tags: int = 64
    max_tag_chars: int = 64
    max_query_chars: int = 1_000
    max_search_limit: int = 100
    # How long one operation may run before it counts as a transient failure (retried when
    # max_retries allows). The batch deadline still bounds it.
    operation_timeout_ms: int = 10_000
    # How many operations of one batch run at once when `parallel` is true.
    max_parallel: int = 16


def json_depth(value: Any) -> int:
    """Nesting depth: a scalar is 0, an empty or flat container 1.

    Iterative: orjson accepts bodies nested about a thousand levels deep, and recursion that
    deep exhausts Python's stack (a 500 instead of a validation error)."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):  # only containers add depth
                stack.append((child, depth + 1))
    return deepest


# orjson reads an integer literal outside [-2**63, 2**64) as a float, without a word. After
# parsing it cannot be told from a float literal, so every whole float of magnitude 2**63 or
# more is refused (send it as a string) rather than stored with its digits silently changed.
# Integer literals inside that range parse exactly, so they are kept, 2**63 to 2**64 - 1
# included: refusing them would also fail every later metadata update of a memory that holds one.
HUGE = float(2**63)


def is_huge(value: Any) -> bool:
    return isinstance(value, float) and abs(value) >= HUGE and value.is_integer()


def has_huge_number(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif is_huge(node):
            return True
    return False


def check_metadata(metadata: Any, path: str, limits: Limits) -> None:
    if not isinstance(metadata, dict):
        raise FieldError(path, "must_be_object", f"{path} must be a JSON object")
    if json_depth(metadata) > limits.max_metadata_depth:
        raise FieldError(
            path, "too_deep", f"{path} may nest at most {limits.max_metadata_depth} levels"
        )
    if has_huge_number(metadata):
        raise FieldError(
            path,
            "number_out_of_range",
            f"{path} holds a whole number past the 64-bit integers (or a float of magnitude "
            "2^63 or more); send it as a string",
        )
    size = len(orjson.dumps(metadata))
    if size > limits.max_metadata_bytes:
        raise FieldError(
            path,
            "too_large",
            f"{path} is {size} bytes encoded; the limit is {limits.max_metadata_bytes}",
        )
