"""Bulk calls (`batchsvc.batch.bulk`): runs of consecutive creates, and of updates and deletes,
reach storage in one call, and the results are exactly those of the operations made one by one,
whatever the options and faults.

`FaultyStorage(bulk=True)` offers the real MemoryStore's `create_many` and `change_many`,
counts their calls and can fail or stall them; `FaultyStorage()` has neither, so the same
batch runs one operation at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder

from batchsvc.batch.executor import BatchExecutor
from batchsvc.errors import BackendError, TransientBackendError
from batchsvc.limits import Limits
from batchsvc.request.batch_body import decode_batch
from batchsvc.storage import Vector
from tests.helpers.batches import (
    BULK_BATCHES,
    OPTION_SETS,
    comparable,
    create,
    delete,
    ops_of,
    read,
    same_text,
    search,
    statuses,
    stored,
    stored_as_data,
    update,
)
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MISSING
from tests.helpers.service import Service, ServiceFactory


async def bulk_service(service_factory: ServiceFactory, **sections: Any) -> tuple[Service, Any]:
    storage = FaultyStorage(bulk=True)
    return await service_factory(storage=storage, **sections), storage


class TestRuns:
    async def test_a_run_of_creates_is_one_storage_call(
        self, service_factory: ServiceFactory
    ) -> None:
        service, storage = await bulk_service(service_factory)
        status, body = await service.batch([create(f"memory {i}") for i in range(20)])
        assert status == 200
        assert storage.calls["create_many"] == 1 and storage.calls["create"] == 0
        ops = ops_of(body)
        assert all(op["status"] == "success" and op["attempts"] == 1 for op in ops)
        ids = [op["result"]["id"] for op in ops]
        assert ids == sorted(ids) and len(set(ids)) == 20
        listed = await stored(service)
        assert [m["id"] for m in listed] == ids[::-1]
        assert [m["content"] for m in listed] == [f"memory {i}" for i in range(20)][::-1]

    async def test_runs_end_at_any_other_operation(self, service_factory: ServiceFactory) -> None:
        service, storage = await bulk_service(service_factory)
        status, body = await service.batch(
            [
                create("a"),
                create("b"),
                read("$0"),
                create("c"),
                create("d"),
                create("e"),
                update("$3", content="c2"),
                create("f"),  # alone: no bulk for a run of one
                search("e"),
                create("g"),
                create("h"),
            ]
        )
        assert status == 200, body
        assert storage.calls["create_many"] == 3
        assert storage.calls["create"] == 1
        assert ops_of(body)[2]["result"]["content"] == "a"
        assert {m["content"] for m in await stored(service)} == {
            "a", "b", "c2", "d", "e", "f", "g", "h"
        }  # fmt: skip

    async def test_an_invalid_create_splits_a_run(self, service_factory: ServiceFactory) -> None:
        service, storage = await bulk_service(service_factory)
        bad = {"type": "create", "data": {"title": "no content"}}
        status, body = await service.batch(
            [create("a"), create("b"), bad, create("c"), create("d")],
            {"continue_on_error": True},
        )
        assert status == 207
        assert statuses(body) == ["success", "success", "failed", "success", "success"]
        assert storage.calls["create_many"] == 2


# The same batches with and without bulk creates: equal responses and equal stores. ----------


@pytest.mark.parametrize(
    "options", OPTION_SETS, ids=lambda o: "-".join(k for k, v in o.items() if v)
)
@pytest.mark.parametrize("batch", range(len(BULK_BATCHES)))
async def test_bulk_changes_nothing_but_the_calls(
    service_factory: ServiceFactory, batch: int, options: dict[str, Any]
) -> None:
    plain = await service_factory(storage=FaultyStorage())
    bulky, storage = await bulk_service(service_factory)
    got = [await service.batch(BULK_BATCHES[batch], options) for service in (plain, bulky)]
    assert got[0][0] == got[1][0]
    assert same_text(comparable(got[0][1])) == same_text(comparable(got[1][1]))
    assert storage.calls["create_many"] >= 1
    # Runs of changes go in one call when writes run in order (batches 4 on).
    in_order = not options["parallel"] or not options["continue_on_error"]
    assert (storage.calls["change_many"] >= 1) == (batch >= 4 and in_order)
    assert await stored_as_data(plain) == await stored_as_data(bulky)


# A bulk call that fails -----------------------------------------------------------------------


class TestFailedBulk:
    """A failed bulk call stored nothing: each create then runs alone, as it would have."""

    @pytest.mark.parametrize(
        "error",
        [BackendError("disk on fire"), TransientBackendError("busy"), ValueError("odd")],
        ids=["backend", "transient", "other"],
    )
    async def test_each_create_then_runs_alone(
        self, service_factory: ServiceFactory, error: Exception
    ) -> None:
        service, storage = await bulk_service(service_factory)
        storage.fail("create_many", error=error)
        status, body = await service.batch([create(f"m{i}") for i in range(5)])
        assert status == 200
        assert storage.calls["create_many"] == 1 and storage.calls["create"] == 5
        # The failed bulk call is not counted: each create's attempts are its own calls.
        assert [op["attempts"] for op in ops_of(body)] == [1] * 5
        assert sorted(m["content"] for m in await stored(service)) == [f"m{i}" for i in range(5)]

    async def test_a_create_that_fails_alone_stops_the_batch_there(
        self, service_factory: ServiceFactory
    ) -> None:
        service, storage = await bulk_service(service_factory)
        storage.fail("create_many", error=BackendError("disk on fire"))
        storage.fail("create", error=BackendError("still on fire"))
        status, body = await service.batch([create(f"m{i}") for i in range(4)])
        assert status == 207
        assert statuses(body) == ["failed", "skipped", "skipped", "skipped"]
        assert ops_of(body)[0]["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert await stored(service) == []

    async def test_retries_after_a_failed_bulk_are_the_creates_own(
        self, service_factory: ServiceFactory
    ) -> None:
        service, storage = await bulk_service(service_factory)
        storage.fail("create_many")
        storage.fail("create", times=2)  # transient: the first create needs three tries
        status, body = await service.batch([create(f"m{i}") for i in range(3)], {"max_retries": 2})
        assert status == 200
        assert [op["attempts"] for op in ops_of(body)] == [3, 1, 1]


class TestDeadlines:
    async def test_the_batch_deadline_during_a_bulk_call_times_out_its_creates(
        self, service_factory: ServiceFactory
    ) -> None:
        service, storage = await bulk_service(service_factory)
        storage.delay("create_many", 1.0)
        status, body = await service.batch(
            [create(f"m{i}") for i in range(3)] + [read(MISSING)],
            {"timeout": 200, "parallel": False},
        )
        assert status == 207
        ops = ops_of(body)
        for op in ops[:3]:
            assert op["status"] == "failed" and op["attempts"] == 1
            assert op["error"]["code"] == "TIMEOUT"
            assert "while the operation ran" in op["error"]["message"]
        assert ops[3]["status"] == "skipped"
        assert ops[3]["error"]["code"] == "TIMEOUT"
        assert await stored(service) == []

    async def test_an_operation_time_out_of_a_bulk_call_runs_them_alone(
        self, service_factory: ServiceFactory
    ) -> None:
        service, storage = await bulk_service(service_factory, limits={"operation_timeout_ms": 100})
        storage.delay("create_many", 1.0, times=1)
        status, body = await service.batch([create(f"m{i}") for i in range(3)])
        assert status == 200
        assert storage.calls["create"] == 3
        assert [op["attempts"] for op in ops_of(body)] == [1, 1, 1]
        assert len(await stored(service)) == 3


class TestParallel:
    async def test_workers_wait_for_the_bulk_that_took_their_creates(
        self, service_factory: ServiceFactory
    ) -> None:
        """With continue_on_error the other workers pick up later creates at once; they wait
        for the bulk call, and what depends on those creates runs only after it."""
        service, storage = await bulk_service(service_factory)
        storage.delay("create_many", 0.05)
        operations = [create(f"m{i}") for i in range(30)] + [read(f"${i}") for i in range(30)]
        status, body = await service.batch(
            operations, {"parallel": True, "continue_on_error": True}
        )
        assert status == 200
        assert storage.calls["create_many"] == 1 and storage.calls["create"] == 0
        ops = ops_of(body)
        assert [op["result"]["content"] for op in ops[30:]] == [f"m{i}" for i in range(30)]

    @pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "bulk"])
    async def test_cancelling_the_batch_during_a_bulk_call_runs_nothing_after_it(
        self, bulk: bool
    ) -> None:
        """Found in review: cancelling the workers that waited on a claim cancelled the claim
        itself; the bulk's worker then crashed on it and ran the rest of the batch."""
        storage = FaultyStorage(bulk=bulk)
        storage.delay("create_many" if bulk else "create", 0.2, times=1 if bulk else 3)
        operations = [create("a0"), create("a1"), create("a2"), search("zzz")]
        operations += [create("late0"), create("late1"), create("late2")]
        request = decode_batch(
            {"operations": operations, "options": {"parallel": True, "continue_on_error": True}},
            Limits(),
            supports_transactions=True,
        )
        task = asyncio.create_task(BatchExecutor(storage, Limits()).execute("acme", request, "b"))
        await asyncio.sleep(0.05)  # the first creates are stalled; other workers wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # anything still running would have finished by now
        assert (await storage.store.list("acme")).items == []
        assert storage.calls["search"] == 0


class TestChangesWithVectors:
    async def test_text_changes_in_a_run_leave_the_vectors_one_by_one_would(
        self, service_factory: ServiceFactory
    ) -> None:
        """A run's new texts are embedded in one call, from the memories as read before it
        with the run's earlier changes applied: a memory changed twice in the run gets the
        vector of its final text, as one by one."""
        operations = [
            create("the walrus sleeps", title="Animals"),
            create("sourdough with rye"),
            create("train to lisbon"),
            update("$0", content="the walrus swims"),
            update("$0", title="Sea life"),  # its text was read before the update above
            update("$1", content="a loaf of wheat bread"),
            delete("$2"),
            update("$1", metadata={"k": 1}),
        ]
        vectors = []
        for bulk in (False, True):
            storage = FaultyStorage(bulk=bulk)
            async with WordLlamaEmbedder() as embedder:
                service = await service_factory(storage=storage, embedder=embedder)
                status, body = await service.batch(operations)
                assert status == 200, body
                ids = [op["result"]["id"] for op in ops_of(body)[:3]]
                index = storage.store._tenant("acme").vectors
                vectors.append([index.get(memory_id) for memory_id in ids])
                if bulk:
                    assert storage.calls["change_many"] == 1
                    [final] = await embedder.embed(["Sea life\nthe walrus swims"])
                    assert vectors[-1][0] == pytest.approx(final, abs=1e-6)
        assert vectors[1][2] is None
        for plain, bulky in zip(vectors[0], vectors[1], strict=True):
            assert plain == (None if bulky is None else pytest.approx(bulky, abs=1e-6))

    async def test_a_text_another_batch_changed_is_refused_and_made_alone(
        self, service_factory: ServiceFactory
    ) -> None:
        """The run's vectors are made before its call; a batch that retitles a memory in
        between makes the backend refuse that update (TextChanged): it runs alone, embedded
        again, and the rest of the run goes on."""
        storage = FaultyStorage(bulk=True)
        async with WordLlamaEmbedder() as embedder:
            service = await service_factory(storage=storage, embedder=embedder)
            first = await service.create("old content", title="Old title")
            second = await service.create("second memory")
            storage.delay("change_many", 0.2, times=1)
            run = [update(first, content="new content"), update(second, content="second new")]
            pending = asyncio.create_task(service.batch(run))
            await asyncio.sleep(0.05)
            status, _ = await service.batch([update(first, title="New title")])
            assert status == 200
            status, body = await pending
            assert status == 200 and [op["attempts"] for op in ops_of(body)] == [1, 1]
            assert storage.calls["change_many"] == 1
            assert storage.calls["update"] == 3  # the other batch's, then each of the run alone
            vectors = storage.store._tenant("acme").vectors
            [expected] = await embedder.embed(["New title\nnew content"])
            assert vectors.get(first) == pytest.approx(expected, abs=1e-6)
            [second_vector] = await embedder.embed(["second new"])
            assert vectors.get(second) == pytest.approx(second_vector, abs=1e-6)


class SlowEmbedder(WordLlamaEmbedder):
    """The real embedder, `delay` seconds slower once `slow` is set; counts the texts."""

    slow = False
    delay = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.texts += len(texts)
        if self.slow:
            await asyncio.sleep(self.delay)
        return await super().embed(texts)


class TestPlanningAChangeRun:
    """Found in review: reading and embedding for a run of changes happen inside the bulk
    call, under its time-out and the batch deadline, and a fault there is the call's."""

    async def both(
        self,
        service_factory: ServiceFactory,
        operations: list[Any],
        options: dict[str, Any],
        prepare: Any,
    ) -> list[Any]:
        got = []
        for bulk in (False, True):
            storage = FaultyStorage(bulk=bulk)
            async with SlowEmbedder() as embedder:
                service = await service_factory(storage=storage, embedder=embedder)
                ids = [await service.create(f"memory {i}") for i in range(3)]
                prepare(storage, embedder)
                status, body = await service.batch(
                    [{**op, "id": ids[int(op["id"])]} for op in operations], options
                )
                got.append((status, same_text(comparable(body))))
                if bulk:
                    assert storage.calls["change_many"] + storage.calls["get"] >= 1
        return got

    async def test_a_slow_embedder_meets_the_deadline_as_one_by_one(
        self, service_factory: ServiceFactory
    ) -> None:
        def slow(storage: FaultyStorage, embedder: SlowEmbedder) -> None:
            embedder.slow = True

        operations = [update(str(i), content=f"changed {i}") for i in range(3)]
        plain, bulky = await self.both(
            service_factory, operations, {"timeout": 300, "parallel": False}, slow
        )
        assert plain == bulky
        assert plain[0] == 207 and '"TIMEOUT"' in plain[1]

    async def test_a_transient_read_fault_is_retried_as_one_by_one(
        self, service_factory: ServiceFactory
    ) -> None:
        def faulty_get(storage: FaultyStorage, embedder: SlowEmbedder) -> None:
            storage.fail("get")  # one by one, the update's read
            storage.fail("get_many")  # in bulk, the run's

        operations = [update(str(i), content=f"changed {i}") for i in range(3)]
        for options in ({"max_retries": 2}, {"max_retries": 2, "parallel": False}):
            plain, bulky = await self.both(service_factory, operations, options, faulty_get)
            # In bulk the run's read fails the call (not counted), then the first update's
            # own read fails once and is retried, as one by one.
            assert plain == bulky and plain[0] == 200


async def test_a_change_call_that_fails_whole_is_not_made_again_per_operation(
    service_factory: ServiceFactory,
) -> None:
    """Found in review: after a failed call each operation started a new one for the rest."""
    service, storage = await bulk_service(service_factory)
    ids = [await service.create(f"memory {i}") for i in range(8)]
    storage.fail("change_many", times=10, error=BackendError("down"))
    status, _ = await service.batch([update(i, content="x") for i in ids])
    assert status == 200
    assert storage.calls["change_many"] == 1 and storage.calls["update"] == 8


async def test_a_memory_changed_all_through_a_run_is_embedded_once_per_change(
    service_factory: ServiceFactory,
) -> None:
    """Found in review: each refusal re-planned the rest of the run (5,050 texts for 100)."""
    storage = FaultyStorage(bulk=True)
    async with SlowEmbedder() as embedder:
        service = await service_factory(storage=storage, embedder=embedder)
        memory_id = await service.create("start", title="Start")
        embedder.texts = 0
        operations = [
            update(memory_id, **({"content": f"content {i}"} if i % 2 else {"title": f"T{i}"}))
            for i in range(100)
        ]
        status, body = await service.batch(operations)
        assert status == 200 and ops_of(body)[-1]["result"]["version"] == 101
        assert embedder.texts == 100 and storage.calls["change_many"] == 1
        [final] = await embedder.embed(["T98\ncontent 99"])
        assert storage.store._tenant("acme").vectors.get(memory_id) == pytest.approx(
            final, abs=1e-6
        )
