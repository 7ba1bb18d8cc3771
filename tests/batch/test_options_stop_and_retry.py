"""Batch options of API.md through a real socket: `continue_on_error` and `max_retries`.

Faults and delays come from `FaultyStorage`; where timing must be exact, the executor is driven
directly with an injected clock, sleep and jitter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers.batches import (
    codes,
    comparable,
    contents,
    create,
    delete,
    executor_for,
    get_memory,
    ops_of,
    read,
    search,
    statuses,
    stored,
    update,
)
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MISSING
from tests.helpers.service import Service, ServiceFactory

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
        """A NOT_FOUND while slow writes are in flight gives exactly the sequential outcome:
        everything before it took effect, everything after it is skipped and had no effect
        (writes wait for every earlier operation; reads run ahead and are then discarded)."""
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
        assert [op["status"] for op in ops] == ["success"] * 4 + ["failed"] + ["skipped"] * 5
        # Truthfulness, through the API.
        final = {m["id"]: m for m in await stored(service)}
        by_content = {m["content"]: m for m in final.values()}
        assert final[ops[0]["result"]["id"]]["content"] == "c0 changed"  # op 3 took effect
        assert final[ops[1]["result"]["id"]]["content"] == "c1 one"  # op 9 did not
        assert "c5 five" not in by_content and "c8 eight" not in by_content
        assert ops[2]["status"] == "success"
        assert final[existing]["content"] == "existing changed"
        assert final[existing]["version"] == 2
        # And the same statuses as a sequential run of the same batch.
        _, sequential = await service.batch(batch, {"parallel": False, "continue_on_error": False})
        assert [op["status"] for op in ops_of(sequential)] == [op["status"] for op in ops]


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


class TestMisbehavingBackends:
    """A backend that raises CancelledError or TimeoutError of its own fails one operation with
    INTERNAL_ERROR, once: neither is mistaken for a cancellation or for our own time-out."""

    @pytest.mark.parametrize("error", [asyncio.CancelledError(), TimeoutError("socket")])
    async def test_fails_alone_and_is_not_retried(
        self, service_factory: ServiceFactory, error: BaseException
    ) -> None:
        storage = FaultyStorage()
        service = await service_factory(storage=storage)
        storage.fail("create", error=error)  # type: ignore[arg-type]
        status, body = await service.batch(
            [create("odd"), create("fine")], {"continue_on_error": True, "max_retries": 3}
        )
        assert status == 207
        first, second = ops_of(body)
        assert first["status"] == "failed" and first["error"]["code"] == "INTERNAL_ERROR"
        assert first["attempts"] == 1
        assert second["status"] == "success"
