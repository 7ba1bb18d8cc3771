"""Metadata filters: parsed once into a small tree that every backend can evaluate or compile.

Semantics (the same on every backend; the conformance suite checks them):
- `{"key": value}` is equality; `{"key": {"$op": value, ...}}` applies each operator (AND);
  several keys in one object are ANDed; `$and` / `$or` take non-empty lists of filters.
- Dotted keys reach into nested objects: `"a.b"` is `metadata["a"]["b"]`.
- Values are strings, numbers or booleans (`$in` / `$nin`: non-empty lists of them). Null,
  objects and arrays are rejected: no backend can compare them the same way.
- A comparison on a key that is missing, or whose value is of another kind (string versus
  number; booleans are not numbers; an array or object), is false. That holds for `$ne` and
  `$nin` too: they match memories that have the key with a different value.
- `$gt $gte $lt $lte` compare numbers with numbers and strings with strings (by code point).
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from batchsvc.errors import FieldError
from batchsvc.limits import is_huge

Scalar = str | int | float | bool
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
MEMBERSHIP = ("$in", "$nin")
MAX_FILTER_DEPTH = 8


@frozen
class Compare:
    path: tuple[str, ...]
    op: str
    value: Scalar


@frozen
class Member:
    path: tuple[str, ...]
    values: tuple[Scalar, ...]
    negate: bool


@frozen
class And:
    children: tuple[Filter, ...]


@frozen
class Or:
    children: tuple[Filter, ...]


Filter = Compare | Member | And | Or


def _kind(value: Any) -> str | None:
    """The comparable kind of a value: booleans, numbers and strings never mix."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _lookup(metadata: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = metadata
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _compare(op: str, left: Any, right: Scalar) -> bool:
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return False
    if op == "$eq":
        return bool(left == right)
    if op == "$ne":
        return bool(left != right)
    if op == "$gt":
        return bool(left > right)
    if op == "$gte":
        return bool(left >= right)
    if op == "$lt":
        return bool(left < right)
    return bool(left <= right)


def matches(node: Filter, metadata: dict[str, Any]) -> bool:
    """Whether a memory with this metadata passes the filter (the reference semantics)."""
    if isinstance(node, And):
        return all(matches(child, metadata) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, metadata) for child in node.children)
    found, value = _lookup(metadata, node.path)
    if not found:
        return False
    if isinstance(node, Compare):
        return _compare(node.op, value, node.value)
    hit = any(_compare("$eq", value, candidate) for candidate in node.values)
    if not node.negate:
        return hit
    # Like $ne, $nin matches only a value it can compare: a scalar of a kind in the list.
    kind = _kind(value)
    return not hit and any(_kind(candidate) == kind for candidate in node.values)


def _scalar(value: Any, path: str) -> Scalar:
    if _kind(value) is None:
        raise FieldError(
            path, "invalid_filter_value", f"{path} must be a string, number or boolean"
        )
    if is_huge(value):
        raise FieldError(
            path,
            "number_out_of_range",
            f"{path}: send whole numbers past the 64-bit integers as strings",
        )
    return value  # type: ignore[no-any-return]


def _split_key(key: str, path: str) -> tuple[str, ...]:
    parts = tuple(key.split("."))
    if not key or any(not part for part in parts):
        raise FieldError(
            path, "invalid_filter_key", f"{path}: a key must be non-empty dotted names"
        )
    return parts


def _parse_operators(key: str, ops: dict[str, Any], path: str) -> Filter:
    keypath = _split_key(key, path)
    if not ops:
        raise FieldError(path, "empty_filter", f"{path} needs at least one operator")
    nodes: list[Filter] = []
    for op, value in ops.items():
        op_path = f"{path}.{op}"
        if op in COMPARISONS:
            scalar = _scalar(value, op_path)
            if op not in ("$eq", "$ne") and _kind(scalar) == "bool":
                raise FieldError(
                    op_path, "invalid_filter_value", f"{op} compares numbers or strings"
                )
            nodes.append(Compare(keypath, op, scalar))
        elif op in MEMBERSHIP:
            if not isinstance(value, list) or not value:
                raise FieldError(
                    op_path, "must_be_nonempty_array", f"{op_path} must be a non-empty array"
                )
            values = tuple(_scalar(v, f"{op_path}[{i}]") for i, v in enumerate(value))
            nodes.append(Member(keypath, values, negate=op == "$nin"))
        else:
            raise FieldError(
                op_path,
                "unknown_operator",
                f"unknown operator {op!r}; use one of {', '.join(COMPARISONS + MEMBERSHIP)}",
            )
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_list(value: Any, path: str, depth: int) -> tuple[Filter, ...]:
    if not isinstance(value, list) or not value:
        raise FieldError(
            path, "must_be_nonempty_array", f"{path} must be a non-empty array of filters"
        )
    return tuple(_parse(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _parse(raw: Any, path: str, depth: int) -> Filter:
    if depth > MAX_FILTER_DEPTH:
        raise FieldError(path, "too_deep", f"filters may nest at most {MAX_FILTER_DEPTH} levels")
    if not isinstance(raw, dict):
        raise FieldError(path, "must_be_object", f"{path} must be an object")
    nodes: list[Filter] = []
    for key, value in raw.items():
        key_path = f"{path}.{key}"
        if key == "$and":
            nodes.append(And(_parse_list(value, key_path, depth)))
        elif key == "$or":
            nodes.append(Or(_parse_list(value, key_path, depth)))
        elif key.startswith("$"):
            raise FieldError(
                key_path, "unknown_operator", f"{key!r} is not allowed here; use $and or $or"
            )
        elif isinstance(value, dict):
            nodes.append(_parse_operators(key, value, key_path))
        else:
            nodes.append(Compare(_split_key(key, key_path), "$eq", _scalar(value, key_path)))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def parse_filter(raw: Any, path: str = "options.filters") -> Filter | None:
    """Parse a client's filter object; `{}` means no filter. Raises FieldError with its path."""
    if isinstance(raw, dict) and not raw:
        return None
    return _parse(raw, path, 0)
