"""Batches for the tests: operation builders, ways to look at results and at the store through
the API itself (reads, searches, the listing) in a later request, an executor on a fake clock,
and the batches that the bulk-call tests run with and without bulk calls."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from batchsvc.batch.executor import BatchExecutor
from batchsvc.limits import Limits
from batchsvc.request.batch_body import decode_batch
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MEMORY_ID, MISSING, TIMESTAMP
from tests.helpers.service import Service

# Operation builders --------------------------------------------------------------------------


def create(content: str, **data: Any) -> dict[str, Any]:
    return {"type": "create", "data": {"content": content, **data}}


def read(memory_id: str) -> dict[str, Any]:
    return {"type": "read", "id": memory_id}


def update(memory_id: str, **data: Any) -> dict[str, Any]:
    return {"type": "update", "id": memory_id, "data": data}


def delete(memory_id: str) -> dict[str, Any]:
    return {"type": "delete", "id": memory_id}


def search(query: str, **options: Any) -> dict[str, Any]:
    return {"type": "search", "query": query, "options": {"mode": "lexical", **options}}


# Looking at results and at the store ---------------------------------------------------------


def ops_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = body["data"]["operations"]
    assert [op["index"] for op in operations] == list(range(len(operations)))
    return operations


def statuses(body: dict[str, Any]) -> list[str]:
    return [op["status"] for op in ops_of(body)]


def codes(body: dict[str, Any]) -> list[str | None]:
    return [op.get("error", {}).get("code") for op in ops_of(body)]


def normalised(value: Any) -> Any:
    """`value` with memory ids numbered by first appearance and timestamps blanked."""
    seen: dict[str, str] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: walk(v) for key, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str) and MEMORY_ID.fullmatch(item):
            return seen.setdefault(item, f"<id{len(seen)}>")
        if isinstance(item, str) and TIMESTAMP.fullmatch(item):
            return "<time>"
        return item

    return walk(value)


def comparable(body: dict[str, Any]) -> Any:
    """A batch response without what legitimately differs between two runs."""
    data = {k: v for k, v in body["data"].items() if k not in ("batch_id", "execution_time")}
    return normalised({**body, "data": data})


async def stored_as_data(service: Service) -> Any:
    """Every page of the listing and every memory, as data, ids and times normalised."""
    pages, memories = await snapshot(service)
    return same_text(
        [json.loads(page)["data"] for page in pages]
        + [json.loads(memories[memory_id])["data"] for memory_id in sorted(memories)]
    )


def same_text(value: Any) -> str:
    """`value` as JSON text, ids (also those inside messages) numbered by first appearance
    and timestamps blanked."""
    seen: dict[str, str] = {}
    text = json.dumps(value, sort_keys=True)
    text = MEMORY_ID.sub(lambda found: seen.setdefault(found[0], f"<id{len(seen)}>"), text)
    return TIMESTAMP.sub("<time>", text)


async def snapshot(service: Service, key: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The full listing (raw page bodies) and every memory's raw JSON, as the API returns them."""
    pages: list[str] = []
    memories: dict[str, str] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await service.client.get(
            "/api/v1/memories", params=params, headers=service.auth(key)
        )
        assert response.status == 200
        pages.append(await response.text())
        data = (await response.json())["data"]
        for item in data["items"]:
            one = await service.client.get(
                f"/api/v1/memories/{item['id']}", headers=service.auth(key)
            )
            assert one.status == 200
            memories[item["id"]] = await one.text()
        cursor = data["next_cursor"]
        if cursor is None:
            return pages, memories


async def stored(service: Service) -> list[dict[str, Any]]:
    """Every memory of the tenant, newest first."""
    response = await service.client.get(
        "/api/v1/memories", params={"limit": "100"}, headers=service.auth()
    )
    assert response.status == 200
    items: list[dict[str, Any]] = (await response.json())["data"]["items"]
    return items


async def contents(service: Service) -> set[str]:
    return {memory["content"] for memory in await stored(service)}


async def get_memory(service: Service, memory_id: str) -> dict[str, Any] | None:
    response = await service.client.get(f"/api/v1/memories/{memory_id}", headers=service.auth())
    if response.status == 404:
        return None
    assert response.status == 200
    memory: dict[str, Any] = (await response.json())["data"]
    return memory


async def timed_batch(
    service: Service, operations: list[Any], options: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    status, body = await service.batch(operations, options)
    return status, body, time.monotonic() - started


def executor_for(
    storage: FaultyStorage, sleeps: list[float], jitter: float = 1.0
) -> tuple[BatchExecutor, Callable[..., Any]]:
    """An executor on a fake clock that only the recorded sleeps advance."""
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    executor = BatchExecutor(
        storage, Limits(), clock=lambda: now[0], sleep=sleep, jitter=lambda: jitter
    )

    async def run(operations: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        request = decode_batch(
            {"operations": operations, "options": options}, Limits(), supports_transactions=True
        )
        result = await executor.execute("acme", request, "batch_test")
        ops: list[dict[str, Any]] = result.to_json(0)["operations"]
        return ops

    return executor, run


# Batches for bulk calls -----------------------------------------------------------------------

#: Batches with runs of creates, updates and deletes, for the tests that run each with and
#: without bulk calls and compare (tests/batch/ and tests/backends/sqlite/test_bulk_calls.py).
BULK_BATCHES: list[list[Any]] = [
    [create(f"plain {i}") for i in range(12)],
    [create("a"), create("b"), read(MISSING), create("c"), create("d")],
    [create("a"), create("b"), update("$1", content="b2"), create("c"), delete("$0"), read("$0")],
    [
        create("a"),
        create("b"),
        {"type": "create", "data": {}},
        create("c"),
        create("d"),
        search("c"),
    ],
    # Runs of updates and deletes: misses, the same memory twice, a delete then an update.
    [
        *(create(c) for c in "abc"),
        update("$0", content="a2"),
        update("$1", title="T"),
        delete("$2"),
        update("$2", content="x"),
        read("$1"),
        update("$0", metadata={"k": 1}),
        update("$0", tags=["t"]),
    ],
    [
        create("a"),
        create("b"),
        update(MISSING, content="m"),
        delete("$0"),
        delete(MISSING),
        update("$1", content="b2"),
        delete("$1"),
        read("$1"),
    ],
    [
        create("a"),
        create("b"),
        update("$0", title="one"),
        update("$0", content="two"),
        delete("$1"),
        update("$0", tags=["x"]),
        search("two"),
    ],
    # A change's own fault in a run: merged metadata over the limit (16 KB).
    [
        create("a", metadata={"big": "x" * 10_000}),
        create("b"),
        update("$1", content="b2"),
        update("$0", metadata={"more": "y" * 10_000}),
        delete("$1"),
        update("$0", content="a2"),
    ],
]
#: Every mix of `parallel`, `continue_on_error` and `atomic` that the request rules accept.
OPTION_SETS = [
    {"parallel": parallel, "continue_on_error": coe, "atomic": atomic}
    for parallel, coe, atomic in itertools.product([False, True], repeat=3)
    if not (atomic and coe)  # refused by the request rules
]
