"""Batch options of API.md through a real socket: the batch deadline (`timeout`) and `parallel`.

Faults and delays come from `FaultyStorage`; where timing must be exact, the executor is driven
directly with an injected clock, sleep and jitter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchsvc.batch.executor import BatchExecutor
from batchsvc.limits import Limits
from batchsvc.request.batch_body import decode_batch
from tests.helpers.batches import (
    comparable,
    contents,
    create,
    delete,
    get_memory,
    ops_of,
    read,
    search,
    stored,
    timed_batch,
    update,
)
from tests.helpers.faults import FaultyStorage
from tests.helpers.service import Service, ServiceFactory

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
        options = {"continue_on_error": True}
        status_seq, sequential, slow = await timed_batch(
            service, batch, {**options, "parallel": False}
        )
        status_par, parallel, fast = await timed_batch(
            service, batch, {**options, "parallel": True}
        )
        assert status_seq == status_par == 200
        assert slow >= 0.9
        assert fast * 3 < slow
        assert comparable(sequential) == comparable(parallel)

    async def test_stopping_at_a_failure_makes_writes_wait_but_not_reads(
        self, service_factory: ServiceFactory
    ) -> None:
        """With continue_on_error false (the default) a write may take effect only once nothing
        before it has failed, so writes run one after another; reads still run together."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        ids = [await service.create(f"present {i}") for i in range(8)]
        faulty.delay("create", 0.1)
        faulty.delay("get", 0.1)
        status, _, reads_took = await timed_batch(service, [read(i) for i in ids])
        assert status == 200
        assert reads_took < 0.4  # eight 0.1 s reads side by side, not 0.8 s in a row
        creates = [create(f"new {i}") for i in range(5)]
        status, _, writes_took = await timed_batch(service, creates)
        assert status == 200
        assert writes_took >= 0.5

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


class Boom(BaseException):
    """Something no operation should raise (like KeyboardInterrupt)."""


class TestSchedulerUnwinds:
    """When a step dies of a BaseException, no other worker goes on writing."""

    async def test_atomic_parallel_batch_leaves_nothing_behind(self) -> None:
        storage = FaultyStorage()
        storage.delay("create", 0.05, times=1)
        storage.fail("create", error=Boom())  # type: ignore[arg-type]
        storage.delay("update", 0.2)
        executor = BatchExecutor(storage, Limits())
        before = set(asyncio.all_tasks())
        body = {
            "operations": [create("first"), create("second")],
            "options": {"atomic": True, "parallel": True},
        }
        request = decode_batch(body, Limits(), supports_transactions=True)
        with pytest.raises(Boom):
            await executor.execute("acme", request, "batch_boom")
        await asyncio.sleep(0.3)
        assert (await storage.store.list("acme")).items == []
        assert set(asyncio.all_tasks()) - before == set()
