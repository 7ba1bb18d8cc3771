"""What every part of the conformance suite shares: the fixture to override and small builders."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from batchsvc.models import Memory, SearchHit, SearchQuery, new_memory_id
from batchsvc.storage import MemoryOps, Storage

#: The tenant the tests work in, and a stranger who must never see its memories.
TENANT = "tenant-conformance"
OTHER = "tenant-stranger"
#: A fixed clock: many memories share one second, as they do in a real batch.
NOW = "2024-01-15T10:00:00Z"
LATER = "2024-01-15T10:05:00Z"


def make_memory(
    content: str = "a memory",
    *,
    title: str | None = None,
    memory_type: str = "context",
    metadata: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
    now: str = NOW,
) -> Memory:
    """A memory as the core would build it for a create."""
    return Memory(
        id=new_memory_id(),
        content=content,
        title=title,
        memory_type=memory_type,
        metadata={} if metadata is None else metadata,
        tags=tags,
        created_at=now,
        updated_at=now,
        version=1,
    )


async def put(ops: MemoryOps, content: str = "a memory", tenant: str = TENANT, **kw: Any) -> Memory:
    """Create a memory through `ops` and return it."""
    memory = make_memory(content, **kw)
    await ops.create(tenant, memory)
    return memory


async def lexical(ops: MemoryOps, text: str, tenant: str = TENANT, **kw: Any) -> list[SearchHit]:
    """A lexical search; `kw` are the other fields of `SearchQuery`."""
    return await ops.search(tenant, SearchQuery(text, mode="lexical", **kw))


async def listed_ids(ops: MemoryOps, tenant: str = TENANT, **kw: Any) -> list[str]:
    """Every id a listing yields, following cursors to the end."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await ops.list(tenant, cursor=cursor, **kw)
        ids.extend(memory.id for memory in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return ids


class ConformanceBase:
    """Holds the one fixture a backend's test class must provide."""

    # Every test is a coroutine; the mark lets them run under pytest-asyncio's strict mode too.
    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def storage(self) -> Storage:
        """Override: yield a fresh, entered backend, e.g.

        `async with MyStore.from_options({"path": str(tmp_path / "db")}) as store: yield store`
        """
        raise NotImplementedError("a conformance test class must define the `storage` fixture")
