"""The five operation types and their validation.

Each operation is decoded alone: a bad one becomes an `InvalidOperation` carrying its
FieldError, and the rest of the batch is unaffected. Field paths follow API.md: fields of
`data` by their own path (`content`, `tags[1]`), others by their path in the operation.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

from batchsvc.errors import FieldError
from batchsvc.filters import parse_filter
from batchsvc.limits import Limits, check_metadata
from batchsvc.models import (
    MEMORY_ID,
    MEMORY_TYPES,
    SEARCH_MODES,
    MemoryPatch,
    NewMemory,
    SearchQuery,
)
from batchsvc.request.fields import (
    check_keys,
    want_choice,
    want_int,
    want_number,
    want_object,
    want_string,
)

OPERATION_TYPES = ("create", "read", "update", "delete", "search")
MEMORY_FIELDS = frozenset(("content", "title", "memory_type", "metadata", "tags"))
CREATE_FIELDS = frozenset(("type", "data"))
UPDATE_FIELDS = frozenset(("type", "id", "data"))
SEARCH_FIELDS = frozenset(("type", "query", "options"))
BY_ID_FIELDS = frozenset(("type", "id"))
SEARCH_OPTIONS = frozenset(("limit", "filters", "tags", "memory_type", "threshold", "mode"))
REFERENCE = re.compile(r"\$(0|[1-9][0-9]{0,5})")


@frozen
class Ref:
    """`"$N"`: the id that operation N of the same batch created."""

    index: int


IdRef = str | Ref


@frozen
class CreateOp:
    data: NewMemory
    type: str = "create"


@frozen
class ReadOp:
    id: IdRef
    type: str = "read"


@frozen
class UpdateOp:
    id: IdRef
    patch: MemoryPatch
    type: str = "update"


@frozen
class DeleteOp:
    id: IdRef
    type: str = "delete"


@frozen
class SearchOp:
    query: SearchQuery
    # Whether the client chose the mode; hybrid is only the default where an embedder exists.
    mode_given: bool
    type: str = "search"


@frozen
class InvalidOperation:
    type: str | None
    error: FieldError


Operation = CreateOp | ReadOp | UpdateOp | DeleteOp | SearchOp
DecodedOperation = Operation | InvalidOperation


def _id(raw: dict[str, Any], index: int, types: list[str | None]) -> IdRef:
    if "id" not in raw:
        raise FieldError("id", "required", "id is required")
    value = raw["id"]
    if not isinstance(value, str):
        raise FieldError("id", "must_be_string", "id must be a string")
    ref = REFERENCE.fullmatch(value)
    if ref:
        target = int(ref.group(1))
        if target >= index:
            raise FieldError("id", "invalid_reference", f"{value} must name an earlier operation")
        if types[target] != "create":
            raise FieldError("id", "invalid_reference", f"{value} must name a create operation")
        return Ref(target)
    if not MEMORY_ID.fullmatch(value):
        raise FieldError(
            "id", "invalid_id", "id must be mem_ and 16 lowercase hex characters, or $N"
        )
    return value


def _tags(value: Any, path: str, limits: Limits) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FieldError(path, "must_be_array", f"{path} must be an array of strings")
    for i, tag in enumerate(value):
        want_string(tag, f"{path}[{i}]", min_len=1, max_len=limits.max_tag_chars, blank=False)
    unique = tuple(dict.fromkeys(value))
    if len(unique) > limits.max_tags:
        raise FieldError(path, "too_many", f"{path} may hold at most {limits.max_tags} tags")
    return unique


def _memory_fields(data: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The fields of `data` present in the request, each checked (create requires content)."""
    check_keys(data, MEMORY_FIELDS)
    fields: dict[str, Any] = {}
    if "content" in data:
        fields["content"] = want_string(
            data["content"], "content", max_len=limits.max_content_chars, blank=False
        )
    if "title" in data and data["title"] is not None:
        fields["title"] = want_string(data["title"], "title", max_len=limits.max_title_chars)
    elif "title" in data:
        fields["title"] = None
    if "memory_type" in data:
        fields["memory_type"] = want_choice(data["memory_type"], "memory_type", MEMORY_TYPES)
    if "metadata" in data:
        check_metadata(data["metadata"], "metadata", limits)
        fields["metadata"] = data["metadata"]
    if "tags" in data:
        fields["tags"] = _tags(data["tags"], "tags", limits)
    return fields


def _create(raw: dict[str, Any], limits: Limits) -> CreateOp:
    check_keys(raw, CREATE_FIELDS)
    if "data" not in raw:
        raise FieldError("data", "required", "data is required")
    fields = _memory_fields(want_object(raw["data"], "data"), limits)
    if "content" not in fields:
        raise FieldError("content", "required", "Content is required")
    return CreateOp(NewMemory(**fields))


def _update(raw: dict[str, Any], index: int, types: list[str | None], limits: Limits) -> UpdateOp:
    check_keys(raw, UPDATE_FIELDS)
    memory_id = _id(raw, index, types)
    if "data" not in raw:
        raise FieldError("data", "required", "data is required")
    fields = _memory_fields(want_object(raw["data"], "data"), limits)
    if not fields:
        raise FieldError("data", "empty_update", "data must change at least one field")
    # Absent fields stay UNSET (unchanged); an explicit `"title": null` clears the title.
    return UpdateOp(memory_id, MemoryPatch(**fields, limits=limits))


def _search_options(raw: Any, limits: Limits) -> tuple[dict[str, Any], bool]:
    options = want_object(raw, "options")
    check_keys(options, SEARCH_OPTIONS, "options.")
    query: dict[str, Any] = {}
    if "limit" in options:
        query["limit"] = want_int(options["limit"], "options.limit", 1, limits.max_search_limit)
    if "filters" in options:
        query["filter"] = parse_filter(options["filters"], "options.filters")
    if "tags" in options:
        query["tags"] = _tags(options["tags"], "options.tags", limits)
    if "memory_type" in options:
        query["memory_type"] = want_choice(
            options["memory_type"], "options.memory_type", MEMORY_TYPES
        )
    if "threshold" in options:
        query["threshold"] = want_number(options["threshold"], "options.threshold", 0.0, 1.0)
    if "mode" in options:
        query["mode"] = want_choice(options["mode"], "options.mode", SEARCH_MODES)
    return query, "mode" in options


def _search(raw: dict[str, Any], limits: Limits) -> SearchOp:
    check_keys(raw, SEARCH_FIELDS)
    if "query" not in raw:
        raise FieldError("query", "required", "query is required")
    text = want_string(
        raw["query"], "query", min_len=1, max_len=limits.max_query_chars, blank=False
    )
    fields, mode_given = _search_options(raw.get("options", {}), limits)
    return SearchOp(SearchQuery(text=text, **fields), mode_given)


def decode_operation(
    raw: Any, index: int, types: list[str | None], limits: Limits
) -> DecodedOperation:
    """Decode operation `index`; `types` holds the raw `type` of every operation of the batch."""
    op_type = types[index]
    try:
        if not isinstance(raw, dict):
            raise FieldError("operation", "must_be_object", "an operation must be a JSON object")
        if "type" not in raw:
            raise FieldError("type", "required", "type is required")
        if op_type not in OPERATION_TYPES:
            raise FieldError(
                "type", "invalid_choice", f"type must be one of: {', '.join(OPERATION_TYPES)}"
            )
        if op_type == "create":
            return _create(raw, limits)
        if op_type == "update":
            return _update(raw, index, types, limits)
        if op_type == "search":
            return _search(raw, limits)
        check_keys(raw, BY_ID_FIELDS)
        memory_id = _id(raw, index, types)
        return ReadOp(memory_id) if op_type == "read" else DeleteOp(memory_id)
    except FieldError as error:
        return InvalidOperation(op_type, error)


def raw_types(operations: list[Any]) -> list[str | None]:
    """The `type` of each raw operation, where it is a string (for references and results)."""
    return [
        op.get("type") if isinstance(op, dict) and isinstance(op.get("type"), str) else None
        for op in operations
    ]
