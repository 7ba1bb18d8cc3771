"""Every batch option of API.md, and the combinations that matter, mostly through a real socket.

Faults and delays come from `FaultyStorage`, a real `MemoryStore` told to fail or stall; the
store's state is always checked through the API itself (reads, searches, the listing), in a
later request. Where timing must be exact, the executor is driven directly with an injected
clock, sleep and jitter.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faults import FaultyStorage
from support import Service

from batchsvc.batch import decode_batch
from batchsvc.executor import BatchExecutor
from batchsvc.limits import Limits

ServiceFactory = Callable[..., Awaitable[Service]]
MISSING = "mem_0000000000000000"
MEM_ID = re.compile(r"mem_[0-9a-f]{16}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


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
        if isinstance(item, str) and MEM_ID.fullmatch(item):
            return seen.setdefault(item, f"<id{len(seen)}>")
        if isinstance(item, str) and TIMESTAMP.fullmatch(item):
            return "<time>"
        return item

    return walk(value)


def comparable(body: dict[str, Any]) -> Any:
    """A batch response without what legitimately differs between two runs."""
    data = {k: v for k, v in body["data"].items() if k not in ("batch_id", "execution_time")}
    return normalised({**body, "data": data})


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


@pytest.fixture
def faulty() -> FaultyStorage:
    return FaultyStorage()


@pytest.fixture
async def faulty_service(service_factory: ServiceFactory, faulty: FaultyStorage) -> Service:
    return await service_factory(storage=faulty)


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
        result = await executor.run("acme", request, "batch_test")
        ops: list[dict[str, Any]] = result.to_json(0)["operations"]
        return ops

    return executor, run


# continue_on_error ---------------------------------------------------------------------------


class TestStopOnFirstFailure:
    """`continue_on_error: false` (the default): the first failure stops the batch; every later
    operation is `skipped` with SKIPPED and `details.after_index`, and had no effect."""

    async def test_sequential_stop_skips_the_rest_and_they_change_nothing(
        self, service: Service
    ) -> None:
        kept = await service.create("kept memory")
        doomed = await service.create("doomed memory")
        status, body = await service.batch(
            [
                create("alpha first"),
                update(kept, content="kept memory changed"),
                read(MISSING),
                create("beta never"),
                delete(doomed),
                update(kept, content="kept memory twice"),
            ],
            {"parallel": False},
        )
        assert status == 207
        assert statuses(body) == ["success", "success", "failed", "skipped", "skipped", "skipped"]
        ops = ops_of(body)
        assert ops[2]["error"]["code"] == "NOT_FOUND"
        for op in ops[3:]:
            assert op["error"]["code"] == "SKIPPED"
            assert op["error"]["details"] == {"after_index": 2}
            assert op["attempts"] == 0
            assert "result" not in op
        data = body["data"]
        assert (data["processed"], data["failed"], data["skipped"], data["total"]) == (2, 1, 3, 6)
        # The skipped operations had no effect: no create, no delete, no second update.
        assert await contents(service) == {"alpha first", "kept memory changed", "doomed memory"}
        kept_now = await get_memory(service, kept)
        assert kept_now is not None and kept_now["version"] == 2

    async def test_stopping_is_the_default(self, service: Service) -> None:
        status, body = await service.batch(
            [create("one"), read("not-an-id"), create("two")]  # no options at all
        )
        assert status == 207
        assert statuses(body) == ["success", "failed", "skipped"]
        assert ops_of(body)[1]["error"]["details"]["field"] == "id"
        assert ops_of(body)[2]["error"] == {
            "code": "SKIPPED",
            "message": ops_of(body)[2]["error"]["message"],
            "details": {"after_index": 1},
        }
        assert await contents(service) == {"one"}

    async def test_continue_on_error_runs_everything(self, service: Service) -> None:
        status, body = await service.batch(
            [
                create("one"),
                read(MISSING),
                create("two"),
                update("$0", content="one changed"),
                delete(MISSING),
                {"type": "create", "data": {"content": 5}},
                create("three"),
            ],
            {"continue_on_error": True},
        )
        assert status == 207
        assert statuses(body) == [
            "success",
            "failed",
            "success",
            "success",
            "failed",
            "failed",
            "success",
        ]
        assert codes(body)[4:6] == ["NOT_FOUND", "VALIDATION_ERROR"]
        data = body["data"]
        assert (data["processed"], data["failed"], data["skipped"]) == (4, 3, 0)
        assert await contents(service) == {"one changed", "two", "three"}

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_validation_failure_stops_at_its_index_in_both_modes(
        self, service_factory: ServiceFactory, parallel: bool
    ) -> None:
        """A malformed operation at k: everything before k runs (even slow, in parallel),
        everything after is skipped with after_index k: parallel gives the sequential result."""
        faulty = FaultyStorage()
        faulty.delay("create", 0.05)
        service = await service_factory(storage=faulty)
        status, body = await service.batch(
            [
                create("first slow"),
                create("second slow"),
                update("$0", content="first slow updated"),
                {"type": "create", "data": {"content": "bad", "metdata": {}}},
                create("after bad"),
                read("$1"),
                delete("$0"),
            ],
            {"parallel": parallel},
        )
        assert status == 207
        assert statuses(body) == ["success"] * 3 + ["failed"] + ["skipped"] * 3
        ops = ops_of(body)
        assert ops[3]["error"]["code"] == "VALIDATION_ERROR"
        assert ops[3]["error"]["details"] == {"field": "metdata", "reason": "unknown_field"}
        for op in ops[4:]:
            assert op["error"]["code"] == "SKIPPED"
            assert op["error"]["details"] == {"after_index": 3}
        assert await contents(service) == {"first slow updated", "second slow"}

    async def test_parallel_validation_failure_is_identical_to_sequential(
        self, service: Service
    ) -> None:
        batch = [
            create("p one"),
            create("p two"),
            search("p"),
            {"type": "update", "id": "$1", "data": {}},
            create("p three"),
            update("$0", title="t"),
        ]
        _, sequential = await service.batch(batch, {"parallel": False})
        _, parallel = await service.batch(batch, {"parallel": True})
        assert statuses(sequential) == ["success"] * 3 + ["failed"] + ["skipped"] * 2
        first, second = comparable(sequential), comparable(parallel)
        # The second run's search also finds the first run's memories; compare the rest.
        first["data"]["operations"][2] = second["data"]["operations"][2] = None
        assert first == second

    async def test_parallel_runtime_failure_is_truthful(
        self, service_factory: ServiceFactory
    ) -> None:
        """A NOT_FOUND while slow creates are in flight: what started may finish (and says so),
        what had not started is skipped and had no effect; results stay in request order."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        existing = await service.create("existing memory")
        faulty.delay("create", 0.1)
        faulty.delay("update", 0.1)
        batch = [
            create("c0 zero"),
            create("c1 one"),
            update(existing, content="existing changed"),
            update("$0", content="c0 changed"),
            read(MISSING),
            create("c5 five"),
            delete(existing),
            read("$1"),
            create("c8 eight"),
            update("$1", content="c1 changed"),
        ]
        status, body = await service.batch(batch, {"parallel": True, "continue_on_error": False})
        assert status == 207
        ops = ops_of(body)
        assert [op["type"] for op in ops] == [op["type"] for op in batch]
        assert ops[4]["status"] == "failed" and ops[4]["error"]["code"] == "NOT_FOUND"
        assert {op["status"] for op in ops} <= {"success", "failed", "skipped"}
        assert [op["index"] for op in ops if op["status"] == "failed"] == [4]
        for op in ops:
            if op["status"] == "skipped":
                assert op["error"] == {
                    "code": "SKIPPED",
                    "message": op["error"]["message"],
                    "details": {"after_index": 4},
                }
                assert op["attempts"] == 0
        # Operations that had not started when op 4 failed: the ones waiting on a slow one.
        assert ops[3]["status"] == ops[7]["status"] == ops[9]["status"] == "skipped"
        assert ops[6]["status"] == "skipped"
        # Truthfulness, through the API.
        final = {m["id"]: m for m in await stored(service)}
        by_content = {m["content"]: m for m in final.values()}
        for index, content in ((0, "c0 zero"), (1, "c1 one"), (5, "c5 five"), (8, "c8 eight")):
            if ops[index]["status"] == "success":
                memory = final[ops[index]["result"]["id"]]
                assert memory["content"] == content and memory["version"] == 1
            else:
                assert content not in by_content
        assert ops[2]["status"] == "success"
        assert final[existing]["content"] == "existing changed"
        assert final[existing]["version"] == 2


# max_retries ---------------------------------------------------------------------------------


class TestRetries:
    """`max_retries`: transient faults (busy backend, an operation's own time-out) are retried
    up to max_retries times with exponential backoff and jitter; `attempts` says how many calls
    were made; not-found, validation and dependency failures are never retried."""

    async def test_one_transient_fault_is_retried_and_stores_one_memory(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        faulty.fail("create", times=1)
        status, body = await faulty_service.batch([create("retried once")], {"max_retries": 1})
        assert status == 200
        op = ops_of(body)[0]
        assert op["status"] == "success" and op["attempts"] == 2
        assert faulty.calls["create"] == 2
        memories = await stored(faulty_service)
        assert [m["content"] for m in memories] == ["retried once"]
        assert memories[0]["id"] == op["result"]["id"]

    @pytest.mark.parametrize("options", [{}, {"max_retries": 0}])
    async def test_without_retries_a_transient_fault_fails_the_operation(
        self, faulty_service: Service, faulty: FaultyStorage, options: dict[str, Any]
    ) -> None:
        faulty.fail("create", times=1)
        status, body = await faulty_service.batch([create("never stored")], options)
        assert status == 207
        op = ops_of(body)[0]
        assert op["status"] == "failed"
        assert op["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert op["attempts"] == 1
        assert faulty.calls["create"] == 1
        assert await stored(faulty_service) == []

    @pytest.mark.parametrize("max_retries", [1, 2, 3])
    async def test_more_faults_than_retries_fail_after_max_retries_plus_one_attempts(
        self, faulty_service: Service, faulty: FaultyStorage, max_retries: int
    ) -> None:
        faulty.fail("create", times=max_retries + 1)
        _, body = await faulty_service.batch(
            [create("too flaky"), create("fine after")],
            {"max_retries": max_retries, "continue_on_error": True, "parallel": False},
        )
        first, second = ops_of(body)
        assert first["status"] == "failed" and first["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert first["attempts"] == max_retries + 1
        assert second["status"] == "success" and second["attempts"] == 1
        assert await contents(faulty_service) == {"fine after"}

    async def test_exactly_as_many_faults_as_retries_still_succeeds(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        faulty.fail("update", times=3)
        memory_id = await faulty_service.create("to update")
        _, body = await faulty_service.batch(
            [update(memory_id, content="updated")], {"max_retries": 3}
        )
        op = ops_of(body)[0]
        assert op["status"] == "success" and op["attempts"] == 4
        assert op["result"]["version"] == 2

    async def test_permanent_failures_are_never_retried(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        big = {"blob": "x" * 9000}
        memory_id = await faulty_service.create("has metadata", metadata=big)
        calls_before = faulty.calls.copy()
        status, body = await faulty_service.batch(
            [
                read(MISSING),
                {"type": "create", "data": {"content": ""}},
                create("bad", tags=["ok", ""]),
                {"type": "create", "data": {"content": 7}},
                update("$3", content="x"),
                update(memory_id, metadata={"more": "y" * 9000}),
                delete(MISSING),
            ],
            {"max_retries": 5, "continue_on_error": True},
        )
        assert status == 207
        ops = ops_of(body)
        assert codes(body) == [
            "NOT_FOUND",
            "VALIDATION_ERROR",
            "VALIDATION_ERROR",
            "VALIDATION_ERROR",
            "DEPENDENCY_FAILED",
            "VALIDATION_ERROR",
            "NOT_FOUND",
        ]
        assert [op["attempts"] for op in ops] == [1, 0, 0, 0, 0, 1, 1]
        assert ops[5]["error"]["details"] == {"field": "metadata", "reason": "too_large"}
        made = faulty.calls - calls_before
        assert made == {"get": 1, "update": 1, "delete": 1}

    async def test_backoff_grows_exponentially_inside_the_deadline(self) -> None:
        storage = FaultyStorage()
        storage.fail("create", times=4)
        sleeps: list[float] = []
        _, run = executor_for(storage, sleeps, jitter=1.0)
        ops = await run([create("slowly")], {"max_retries": 5})
        assert ops[0]["status"] == "success" and ops[0]["attempts"] == 5
        assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4])

    async def test_backoff_is_jittered_and_capped(self) -> None:
        storage = FaultyStorage()
        storage.fail("create", times=10)
        sleeps: list[float] = []
        _, run = executor_for(storage, sleeps, jitter=0.5)
        ops = await run([create("slowly")], {"max_retries": 10, "timeout": 60000})
        assert ops[0]["status"] == "success" and ops[0]["attempts"] == 11
        full = [min(2.0, 0.05 * 2**n) for n in range(10)]
        assert sleeps == pytest.approx([0.5 * s for s in full])

    async def test_backoff_never_sleeps_past_the_batch_deadline(self) -> None:
        storage = FaultyStorage()
        storage.fail("create", times=10)
        sleeps: list[float] = []
        _, run = executor_for(storage, sleeps, jitter=1.0)
        ops = await run([create("doomed")], {"max_retries": 10, "timeout": 1000})
        # 0.05 + 0.1 + 0.2 + 0.4 = 0.75 s; the next 0.8 s would end past the 1 s deadline.
        assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4])
        assert ops[0]["status"] == "failed"
        assert ops[0]["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert ops[0]["attempts"] == 5
        assert storage.calls["create"] == 5
        assert (await storage.list("acme")).items == []

    async def test_an_operation_time_out_is_retried(self, service_factory: ServiceFactory) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty, limits={"operation_timeout_ms": 50})
        faulty.delay("create", 0.2, times=1)
        status, body = await service.batch([create("slow then fast")], {"max_retries": 2})
        assert status == 200
        op = ops_of(body)[0]
        assert op["status"] == "success" and op["attempts"] == 2
        assert faulty.calls["create"] == 2
        assert await contents(service) == {"slow then fast"}

    async def test_an_operation_time_out_without_retries_fails_with_no_effect(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty, limits={"operation_timeout_ms": 50})
        faulty.delay("create", 0.2, times=1)
        status, body = await service.batch([create("too slow")])
        assert status == 207
        op = ops_of(body)[0]
        assert op["status"] == "failed" and op["error"]["code"] == "TIMEOUT"
        assert op["attempts"] == 1
        assert await stored(service) == []


# timeout -------------------------------------------------------------------------------------


class TestBatchDeadline:
    """`timeout`: the deadline of the whole batch. Operations finished before it stand; the one
    running at it fails with TIMEOUT and no effect (or finishes and says so); the ones not
    started are skipped with TIMEOUT; the response comes back at about the deadline."""

    @pytest.mark.parametrize("continue_on_error", [False, True])
    async def test_deadline_mid_batch_sequential(
        self, service_factory: ServiceFactory, continue_on_error: bool
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("create", 0.1)
        batch = [create(f"slow number {i}") for i in range(8)]
        status, body, elapsed = await timed_batch(
            service,
            batch,
            {"timeout": 250, "parallel": False, "continue_on_error": continue_on_error},
        )
        assert elapsed < 0.25 + 0.5
        assert status == 207
        ops = ops_of(body)
        assert ops[0]["status"] == ops[1]["status"] == "success"
        assert ops[2]["status"] in ("success", "failed")
        if ops[2]["status"] == "failed":
            assert ops[2]["error"]["code"] == "TIMEOUT"
        for op in ops[3:]:
            assert op["status"] == "skipped"
            assert op["error"]["code"] == "TIMEOUT"
            assert op["attempts"] == 0
        expected = {f"slow number {i}" for i, op in enumerate(ops) if op["status"] == "success"}
        assert await contents(service) == expected

    async def test_deadline_mid_batch_parallel_chain(self, service_factory: ServiceFactory) -> None:
        """In parallel, a chain of updates on one memory is sequential; the deadline cuts it."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("update", 0.1)
        batch = [create("chain v0")] + [update("$0", content=f"chain v{i}") for i in range(1, 8)]
        status, body, elapsed = await timed_batch(
            service, batch, {"timeout": 250, "continue_on_error": True}
        )
        assert elapsed < 0.25 + 0.5
        assert status == 207
        ops = ops_of(body)
        done = [op["status"] for op in ops].index("skipped")
        assert 2 <= done <= 4
        for op in ops[done:]:
            assert op["status"] == "skipped" and op["error"]["code"] == "TIMEOUT"
        succeeded = [i for i, op in enumerate(ops) if op["status"] == "success"]
        assert succeeded == list(range(len(succeeded)))
        memory = await get_memory(service, ops[0]["result"]["id"])
        assert memory is not None
        assert memory["version"] == len(succeeded)
        assert memory["content"] == f"chain v{len(succeeded) - 1}"

    @pytest.mark.parametrize("value", [0, 60001, "1000", True])
    async def test_timeout_out_of_range_is_rejected(self, service: Service, value: Any) -> None:
        status, body = await service.batch([create("x")], {"timeout": value})
        assert status == 400
        assert body["error"]["code"] == "INVALID_BATCH_REQUEST"
        assert body["error"]["details"]["field"] == "options.timeout"
        assert await stored(service) == []


# parallel ------------------------------------------------------------------------------------


class TestParallel:
    """`parallel: true` (the default) runs independent operations concurrently; an operation
    on an id waits for earlier ones on it, a search for earlier writes, a write for earlier
    searches. Only the time differs from `parallel: false`."""

    async def test_parallel_is_faster_and_gives_the_same_results(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("create", 0.1)
        batch = [create(f"quick item {i}", tags=[f"t{i}"]) for i in range(10)]
        status_seq, sequential, slow = await timed_batch(service, batch, {"parallel": False})
        status_par, parallel, fast = await timed_batch(service, batch, {"parallel": True})
        assert status_seq == status_par == 200
        assert slow >= 0.9
        assert fast * 3 < slow
        assert comparable(sequential) == comparable(parallel)

    async def test_ordering_rules_hold_with_slow_early_operations(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        bystander = await service.create("orchid bystander")
        faulty.delay("create", 0.1)
        faulty.delay("update", 0.05)
        faulty.delay("search", 0.05)
        batch = [
            create("orchid alpha"),
            update("$0", content="orchid beta"),
            read("$0"),
            search("orchid"),
            create("orchid gamma"),
            delete("$0"),
            update(bystander, content="orchid bystander changed"),
            search("orchid"),
            read(bystander),
        ]
        status, body = await service.batch(batch, {"parallel": True})
        assert status == 200, body
        ops = ops_of(body)
        first = ops[0]["result"]["id"]
        assert ops[1]["result"] == {
            "id": first,
            "updated_at": ops[1]["result"]["updated_at"],
            "version": 2,
        }
        assert ops[2]["result"]["content"] == "orchid beta"
        assert ops[2]["result"]["version"] == 2
        hits = {hit["id"]: hit["content"] for hit in ops[3]["result"]["results"]}
        # The search sees every earlier write and none of the later ones.
        assert hits == {first: "orchid beta", bystander: "orchid bystander"}
        later = {hit["id"]: hit["content"] for hit in ops[7]["result"]["results"]}
        assert later == {
            ops[4]["result"]["id"]: "orchid gamma",
            bystander: "orchid bystander changed",
        }
        assert ops[8]["result"]["content"] == "orchid bystander changed"
        # And all of it is exactly what the sequential run says.
        other = await service_factory(storage=FaultyStorage())
        other_bystander = await other.create("orchid bystander")
        batch[6] = update(other_bystander, content="orchid bystander changed")
        batch[8] = read(other_bystander)
        _, sequential = await other.batch(batch, {"parallel": False})
        left, right = comparable(body), comparable(sequential)
        assert left == right

    async def test_equal_scores_rank_in_request_order(
        self, service_factory: ServiceFactory
    ) -> None:
        batch = [create(f"tie{i} apple") for i in range(3)] + [search("apple", limit=2)]
        bodies = []
        for parallel in (False, True):
            faulty = FaultyStorage()
            service = await service_factory(storage=faulty)
            faulty.delay("create", iter([0.06, 0.03, 0.0]).__next__, times=3)  # slowest first
            _, body = await service.batch(batch, {"parallel": parallel})
            bodies.append(body)
        sequential, parallel_run = bodies
        hits = [hit["content"] for hit in ops_of(sequential)[3]["result"]["results"]]
        assert hits == ["tie2 apple", "tie1 apple"]
        assert comparable(parallel_run) == comparable(sequential)

    async def test_a_write_after_a_search_waits_for_it(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("search", 0.1)
        status, body = await service.batch(
            [search("heron"), create("heron arrives"), search("heron")], {"parallel": True}
        )
        assert status == 200
        first, _, second = ops_of(body)
        assert first["result"] == {"results": [], "total": 0}
        assert second["result"]["total"] == 1


# validate_only -------------------------------------------------------------------------------


class TestValidateOnly:
    """`validate_only`: every check a run would make, ids and references included, against the
    state the batch would produce; nothing changes. Each operation is `success` with
    `{"valid": true}` or `failed` with the error a real run would give."""

    async def _world(self, service: Service) -> tuple[str, str]:
        kept = await service.create("kept", metadata={"blob": "k" * 9000})
        gone = await service.create("to delete", tags=["x"])
        await service.batch([update(kept, title="titled")])
        return kept, gone

    def _batch(self, kept: str, gone: str) -> list[dict[str, Any]]:
        return [
            create("brand new", tags=["a"]),  # 0 valid
            update(kept, content="kept, changed"),  # 1 valid
            delete(gone),  # 2 valid
            update(gone, content="after delete"),  # 3 NOT_FOUND: deleted at 2
            read(MISSING),  # 4 NOT_FOUND
            {"type": "create", "data": {"content": "x", "tags": ["ok", 5]}},  # 5 invalid
            update("$5", content="y"),  # 6 DEPENDENCY_FAILED
            update(kept, metadata={"more": "m" * 9000}),  # 7 merged metadata too large
            read("$0"),  # 8 valid
            update("$0", metadata={"a": 1}),  # 9 valid
            search("kept"),  # 10 valid
            delete("$0"),  # 11 valid
            read("$0"),  # 12 NOT_FOUND: deleted at 11
            {"type": "read", "id": "$4"},  # 13 invalid reference
        ]

    async def test_nothing_changes_and_each_op_gets_its_real_error(self, service: Service) -> None:
        kept, gone = await self._world(service)
        before = await snapshot(service)
        status, body = await service.batch(
            self._batch(kept, gone), {"validate_only": True, "parallel": False}
        )
        assert status == 207
        assert await snapshot(service) == before
        ops = ops_of(body)
        valid = {0, 1, 2, 8, 9, 10, 11}
        for op in ops:
            if op["index"] in valid:
                assert op["status"] == "success", op
                assert op["result"] == {"valid": True}
            else:
                assert op["status"] == "failed", op
        assert ops[3]["error"]["code"] == "NOT_FOUND"
        assert ops[3]["error"]["details"] == {"id": gone}
        assert ops[4]["error"]["code"] == "NOT_FOUND"
        assert ops[4]["error"]["details"] == {"id": MISSING}
        assert ops[5]["error"]["code"] == "VALIDATION_ERROR"
        assert ops[5]["error"]["details"] == {"field": "tags[1]", "reason": "must_be_string"}
        assert ops[6]["error"]["code"] == "DEPENDENCY_FAILED"
        assert ops[6]["error"]["details"] == {"depends_on": 5}
        assert ops[7]["error"]["code"] == "VALIDATION_ERROR"
        assert ops[7]["error"]["details"] == {"field": "metadata", "reason": "too_large"}
        assert ops[12]["error"]["code"] == "NOT_FOUND"
        assert ops[13]["error"]["code"] == "VALIDATION_ERROR"
        assert ops[13]["error"]["details"]["field"] == "id"

    async def test_the_errors_are_the_ones_a_real_run_gives(self, service: Service) -> None:
        kept, gone = await self._world(service)
        batch = self._batch(kept, gone)
        _, checked = await service.batch(batch, {"validate_only": True})
        _, real = await service.batch(batch, {"continue_on_error": True, "parallel": False})
        assert statuses(checked) == statuses(real)
        for would, did in zip(ops_of(checked), ops_of(real), strict=True):
            if did["status"] == "failed":
                assert would["error"]["code"] == did["error"]["code"]
                assert normalised(would["error"]["details"]) == normalised(did["error"]["details"])

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_an_all_valid_batch_is_200_and_changes_nothing(
        self, service: Service, parallel: bool
    ) -> None:
        kept, gone = await self._world(service)
        before = await snapshot(service)
        status, body = await service.batch(
            [create("new"), update(kept, tags=["z"]), delete(gone), read(kept), search("kept")],
            {"validate_only": True, "parallel": parallel},
        )
        assert status == 200
        assert [op["result"] for op in ops_of(body)] == [{"valid": True}] * 5
        assert await snapshot(service) == before

    async def test_another_tenants_memory_does_not_exist(self, service: Service) -> None:
        other = service.new_key("globex")
        theirs = await service.create("theirs", key=other)
        _, body = await service.batch([read(theirs), delete(theirs)], {"validate_only": True})
        assert codes(body) == ["NOT_FOUND", "NOT_FOUND"]
        assert await get_memory(service, theirs) is None
        still = await service.batch([read(theirs)], key=other)
        assert still[0] == 200

    async def test_validate_only_never_touches_storage_writes(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        memory_id = await faulty_service.create("kept")
        before = faulty.calls.copy()
        await faulty_service.batch(
            [create("a"), update(memory_id, content="b"), delete(memory_id)],
            {"validate_only": True},
        )
        made = faulty.calls - before
        assert made["create"] == made["update"] == made["delete"] == 0


# atomic --------------------------------------------------------------------------------------


class TestAtomic:
    """`atomic: true`: all or nothing. A failure at k gives 422 ATOMIC_BATCH_FAILED with
    failed_index k; operations that had succeeded report `rolled_back`, the rest `skipped`;
    the store is exactly as before, and no other request ever saw the uncommitted writes."""

    async def _world(self, service: Service) -> tuple[str, str]:
        return await service.create("to update"), await service.create("to delete")

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_success_commits_everything(self, service: Service, parallel: bool) -> None:
        target, doomed = await self._world(service)
        status, body = await service.batch(
            [
                create("atomic one"),
                update(target, content="updated atomically"),
                delete(doomed),
                update("$0", title="titled"),
                search("atomic"),
            ],
            {"atomic": True, "parallel": parallel},
        )
        assert status == 200
        assert body["success"] is True
        assert set(statuses(body)) == {"success"}
        assert await contents(service) == {"atomic one", "updated atomically"}
        created = await get_memory(service, ops_of(body)[0]["result"]["id"])
        assert created is not None and created["title"] == "titled"
        assert ops_of(body)[4]["result"]["total"] == 1

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_a_failure_rolls_everything_back(self, service: Service, parallel: bool) -> None:
        target, doomed = await self._world(service)
        before = await snapshot(service)
        status, body = await service.batch(
            [
                create("atomic one"),
                update(target, content="changed"),
                delete(doomed),
                update("$0", content="atomic changed"),
                read(MISSING),
                create("atomic two"),
                update(target, content="changed again"),
            ],
            {"atomic": True, "parallel": parallel},
        )
        assert status == 422
        assert body["success"] is False
        assert body["error"]["code"] == "ATOMIC_BATCH_FAILED"
        assert body["error"]["details"] == {"failed_index": 4}
        ops = ops_of(body)
        assert ops[4]["status"] == "failed" and ops[4]["error"]["code"] == "NOT_FOUND"
        if not parallel:
            assert statuses(body) == ["rolled_back"] * 4 + ["failed", "skipped", "skipped"]
        # In parallel an operation still waiting (here update "$0", behind its create) when
        # op 4 fails never starts, so it is skipped rather than rolled back.
        for op in ops[:4] + ops[5:]:
            assert op["status"] in ("rolled_back", "skipped")
            if op["status"] == "rolled_back":
                assert "result" not in op and "error" not in op
            else:
                assert op["error"]["details"] == {"after_index": 4}
        assert body["data"]["summary"] == dict.fromkeys(
            ("creates", "reads", "updates", "deletes", "searches"), 0
        )
        assert body["data"]["processed"] == 0
        assert await snapshot(service) == before

    async def test_a_validation_failure_rolls_back_in_parallel_too(self, service: Service) -> None:
        target, doomed = await self._world(service)
        before = await snapshot(service)
        batch = [
            create("v one"),
            update(target, content="changed"),
            delete(doomed),
            {"type": "search", "query": ""},
            create("v two"),
        ]
        _, sequential = await service.batch(batch, {"atomic": True, "parallel": False})
        status, parallel = await service.batch(batch, {"atomic": True, "parallel": True})
        assert status == 422
        assert parallel["error"]["details"] == {"failed_index": 3}
        assert statuses(parallel) == ["rolled_back"] * 3 + ["failed", "skipped"]
        assert comparable(sequential) == comparable(parallel)
        assert await snapshot(service) == before

    async def test_failed_index_names_the_failed_operation_in_parallel(
        self, service_factory: ServiceFactory
    ) -> None:
        """A slow create and a quick failure: operations waiting on the create never start,
        but failed_index is still the operation that failed, as in the sequential run."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("create", 0.1)
        status, body = await service.batch(
            [create("slow"), update("$0", content="slower"), read(MISSING)],
            {"atomic": True, "parallel": True},
        )
        assert status == 422
        assert body["error"]["details"] == {"failed_index": 2}
        ops = ops_of(body)
        assert ops[2]["status"] == "failed" and ops[2]["error"]["code"] == "NOT_FOUND"
        assert ops[0]["status"] == "rolled_back"
        assert ops[1]["status"] in ("rolled_back", "skipped")
        assert await stored(service) == []

    async def test_an_expired_deadline_rolls_everything_back(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        existing = await service.create("existing")
        before = await snapshot(service)
        faulty.delay("create", 0.1)
        status, body, elapsed = await timed_batch(
            service,
            [update(existing, content="changed")] + [create(f"slow {i}") for i in range(6)],
            {"atomic": True, "timeout": 250, "parallel": False},
        )
        assert elapsed < 0.25 + 0.5
        assert status == 422
        assert body["error"]["code"] == "ATOMIC_BATCH_FAILED"
        ops = ops_of(body)
        failed_index = body["error"]["details"]["failed_index"]
        assert 2 <= failed_index <= 4
        assert all(op["status"] == "rolled_back" for op in ops[:failed_index])
        assert ops[failed_index]["status"] in ("failed", "skipped")
        assert ops[failed_index]["error"]["code"] == "TIMEOUT"
        assert all(op["status"] == "skipped" for op in ops[failed_index + 1 :])
        assert await snapshot(service) == before

    async def test_atomic_with_continue_on_error_is_rejected(self, service: Service) -> None:
        status, body = await service.batch(
            [create("never")], {"atomic": True, "continue_on_error": True}
        )
        assert status == 400
        assert body["error"]["code"] == "INVALID_BATCH_REQUEST"
        assert body["error"]["details"]["field"] == "options.continue_on_error"
        assert await stored(service) == []
        status, _ = await service.batch(
            [create("fine")], {"atomic": True, "continue_on_error": False}
        )
        assert status == 200

    @pytest.mark.parametrize("fails", [True, False])
    async def test_concurrent_requests_never_see_uncommitted_writes(
        self, service_factory: ServiceFactory, fails: bool
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("create", 0.15)
        batch = [create("quokka one"), create("quokka two")]
        if fails:
            batch.append(read(MISSING))

        async def look() -> tuple[int, set[str]]:
            await asyncio.sleep(0.1)  # the atomic batch is between its two creates
            _, found = await service.batch([search("quokka")], {"parallel": False})
            listed = await contents(service)
            return ops_of(found)[0]["result"]["total"], listed

        atomic, (hits, listed) = await asyncio.gather(
            service.batch(batch, {"atomic": True, "parallel": False}), look()
        )
        assert atomic[0] == (422 if fails else 200)
        if fails:
            assert hits == 0 and listed == set()
        else:
            assert hits in (0, 2)
            assert listed in (set(), {"quokka one", "quokka two"})
        assert await contents(service) == (set() if fails else {"quokka one", "quokka two"})


# references ----------------------------------------------------------------------------------


class TestReferences:
    """`"$N"` names the id that create N of the same batch made; it must point to an earlier
    create, and fails with DEPENDENCY_FAILED (depends_on N) when that create did not succeed."""

    @pytest.mark.parametrize(
        "operations",
        [
            [read("$1"), create("later")],  # a later index
            [create("x"), update("$1", content="self")],  # itself
            [create("x"), read("$0"), delete("$1")],  # not a create
            [create("x"), read("$7")],  # no such operation
        ],
        ids=["later", "itself", "not-a-create", "out-of-range"],
    )
    async def test_bad_references_are_validation_errors(
        self, service: Service, operations: list[dict[str, Any]]
    ) -> None:
        _, body = await service.batch(operations, {"continue_on_error": True})
        bad = next(op for op in ops_of(body) if op["status"] == "failed")
        assert bad["error"]["code"] == "VALIDATION_ERROR"
        assert bad["error"]["details"] == {"field": "id", "reason": "invalid_reference"}
        assert bad["attempts"] == 0

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_a_reference_to_a_failed_create_is_a_dependency_failure(
        self, faulty_service: Service, faulty: FaultyStorage, parallel: bool
    ) -> None:
        faulty.fail("create", times=1)
        _, body = await faulty_service.batch(
            [
                create("fails in storage"),
                {"type": "create", "data": {"content": "  "}},
                read("$0"),
                update("$1", content="x"),
                delete("$0"),
            ],
            {"continue_on_error": True, "parallel": parallel},
        )
        assert codes(body) == [
            "BACKEND_UNAVAILABLE",
            "VALIDATION_ERROR",
            "DEPENDENCY_FAILED",
            "DEPENDENCY_FAILED",
            "DEPENDENCY_FAILED",
        ]
        ops = ops_of(body)
        assert [op["error"]["details"].get("depends_on") for op in ops[2:]] == [0, 1, 0]
        assert [op["attempts"] for op in ops[2:]] == [0, 0, 0]
        assert faulty.calls["get"] == faulty.calls["update"] == faulty.calls["delete"] == 0

    async def test_a_reference_to_a_failed_create_skips_when_stopping(
        self, service: Service
    ) -> None:
        _, body = await service.batch(
            [{"type": "create", "data": {}}, read("$0")], {"parallel": False}
        )
        assert statuses(body) == ["failed", "skipped"]
        assert ops_of(body)[1]["error"]["code"] == "SKIPPED"

    @pytest.mark.parametrize("parallel", [False, True])
    async def test_update_read_delete_through_references(
        self, service: Service, parallel: bool
    ) -> None:
        status, body = await service.batch(
            [
                create("referenced", tags=["r"]),
                create("other"),
                update("$0", content="referenced, updated", metadata={"k": 1}),
                read("$0"),
                delete("$1"),
                read("$1"),
            ],
            {"continue_on_error": True, "parallel": parallel},
        )
        ops = ops_of(body)
        assert status == 207
        first, second = ops[0]["result"]["id"], ops[1]["result"]["id"]
        assert ops[2]["result"]["id"] == first and ops[2]["result"]["version"] == 2
        assert ops[3]["result"]["content"] == "referenced, updated"
        assert ops[3]["result"]["metadata"] == {"k": 1}
        assert ops[4]["result"] == {"id": second, "deleted": True}
        assert ops[5]["error"]["code"] == "NOT_FOUND"
        assert ops[5]["error"]["details"] == {"id": second}
        assert await contents(service) == {"referenced, updated"}


# summary and attempts ------------------------------------------------------------------------


class TestSummaryAndAttempts:
    """`summary` counts successful operations by type and is always present; every operation
    reports `attempts`; processed + failed + skipped (+ rolled_back) = total."""

    async def test_summary_counts_only_successes(self, service: Service) -> None:
        existing = await service.create("summary base")
        _, body = await service.batch(
            [
                create("s one"),
                create(""),
                read(existing),
                read(MISSING),
                update(existing, content="summary changed"),
                update(MISSING, content="x"),
                search("summary"),
                {"type": "search", "query": "summary", "options": {"limit": 0}},
                delete("$0"),
                delete(MISSING),
            ],
            {"continue_on_error": True},
        )
        data = body["data"]
        assert data["summary"] == {
            "creates": 1,
            "reads": 1,
            "updates": 1,
            "deletes": 1,
            "searches": 1,
        }
        assert (data["processed"], data["failed"], data["skipped"], data["total"]) == (5, 5, 0, 10)

    async def test_summary_is_present_when_nothing_succeeds(self, service: Service) -> None:
        status, body = await service.batch([read(MISSING), create("skipped")])
        assert status == 207
        assert body["data"]["summary"] == dict.fromkeys(
            ("creates", "reads", "updates", "deletes", "searches"), 0
        )

    async def test_every_operation_reports_attempts(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        faulty.fail("get", times=2)
        _, body = await faulty_service.batch(
            [
                create("a"),
                read("$0"),
                {"type": "nope"},
                read(MISSING),
                create("b"),
            ],
            {"max_retries": 2, "parallel": False},
        )
        ops = ops_of(body)
        assert all(isinstance(op["attempts"], int) for op in ops)
        assert [op["attempts"] for op in ops] == [1, 3, 0, 0, 0]
        assert statuses(body) == ["success", "success", "failed", "skipped", "skipped"]
        data = body["data"]
        counted = data["processed"] + data["failed"] + data["skipped"] + data["rolled_back"]
        assert counted == data["total"] == 5
