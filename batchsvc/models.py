"""The memory resource and the values that change or find it.

These are plain attrs classes with no I/O: backends store `Memory` as it is, and the core
builds every `Memory` (ids and timestamps are the core's job, so every backend agrees).
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Literal

from attrs import evolve, field, frozen

from batchsvc.errors import FieldError
from batchsvc.filters import Filter
from batchsvc.limits import Limits, check_metadata

MEMORY_TYPES = ("context", "project", "knowledge", "reference", "personal", "workflow")
SEARCH_MODES = ("hybrid", "semantic", "lexical")
SearchMode = Literal["hybrid", "semantic", "lexical"]


MEMORY_ID = re.compile(r"mem_[0-9a-f]{16}")
_last_id = 0


def new_memory_id() -> str:
    """`mem_` + 16 hex digits that increase with creation: 44 bits of Unix milliseconds, then
    20 bits that start at random each millisecond and count up within it.

    Ids that sort by creation give every backend one order for listings and for search ties
    that does not depend on which of a batch's parallel creates finished first. They are not
    secrets: a foreign tenant's id answers NOT_FOUND like a missing one.
    """
    global _last_id
    millisecond = time.time_ns() // 1_000_000
    if millisecond > _last_id >> 20:
        # A new millisecond: a random start (drawn here only, urandom costs microseconds).
        _last_id = max(millisecond << 20 | secrets.randbits(20), _last_id + 1)
    else:
        _last_id += 1
    return f"mem_{_last_id:016x}"


_last_stamp: tuple[int, str] = (0, "")


def utc_now() -> str:
    """RFC 3339 in UTC with a `Z`, to the second, as in the spec's examples."""
    global _last_stamp
    # strftime costs microseconds and a batch stamps many memories within one second.
    second = int(time.time())
    if _last_stamp[0] != second:
        _last_stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last_stamp[1]


@frozen
class Memory:
    id: str
    content: str
    title: str | None
    memory_type: str
    metadata: dict[str, Any]
    tags: tuple[str, ...]
    created_at: str
    updated_at: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "title": self.title,
            "memory_type": self.memory_type,
            "metadata": self.metadata,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
        }


@frozen
class NewMemory:
    """The validated `data` of a create."""

    content: str
    title: str | None = None
    memory_type: str = "context"
    metadata: dict[str, Any] = field(factory=dict)
    tags: tuple[str, ...] = ()

    def build(self, memory_id: str, now: str) -> Memory:
        return Memory(
            id=memory_id,
            content=self.content,
            title=self.title,
            memory_type=self.memory_type,
            metadata=self.metadata,
            tags=self.tags,
            created_at=now,
            updated_at=now,
            version=1,
        )


class _Unset:
    """Marks a field an update leaves alone (distinct from an explicit null title)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge key by key, `null` removes, the rest replace."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


@frozen
class MemoryPatch:
    """The validated `data` of an update. Fields left UNSET are not changed."""

    content: Any = UNSET
    title: Any = UNSET
    memory_type: Any = UNSET
    metadata: Any = UNSET
    tags: Any = UNSET
    # Bounds for the merged metadata, which only the backend sees (inside its write path).
    limits: Limits = field(factory=Limits, eq=False, repr=False)

    def apply(self, memory: Memory, now: str) -> Memory:
        """The memory after this update; raises FieldError if the merged metadata is too big."""
        changes: dict[str, Any] = {"updated_at": now, "version": memory.version + 1}
        for name in ("content", "title", "memory_type", "tags"):
            value = getattr(self, name)
            if value is not UNSET:
                changes[name] = value
        if self.metadata is not UNSET:
            merged = merge_patch(memory.metadata, self.metadata)
            check_metadata(merged, "metadata", self.limits)
            changes["metadata"] = merged
        return evolve(memory, **changes)

    @property
    def changes_text(self) -> bool:
        """Whether search indexes must be rebuilt for the memory."""
        return self.content is not UNSET or self.title is not UNSET


@frozen
class SearchQuery:
    """A validated search. `vector` is filled by the core when an embedder is configured."""

    text: str
    limit: int = 10
    filter: Filter | None = None
    tags: tuple[str, ...] = ()
    memory_type: str | None = None
    threshold: float = 0.0
    mode: SearchMode = "lexical"
    vector: tuple[float, ...] | None = None


@frozen
class SearchHit:
    memory: Memory
    score: float

    def to_json(self) -> dict[str, Any]:
        body = self.memory.to_json()
        body["score"] = self.score
        return body


__all__ = [
    "MEMORY_TYPES",
    "UNSET",
    "FieldError",
    "Memory",
    "MemoryPatch",
    "NewMemory",
    "SearchHit",
    "SearchQuery",
]
