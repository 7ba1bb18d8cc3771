"""Batch options of API.md through a real socket: `validate_only` and `atomic`.

Faults and delays come from `FaultyStorage`; where timing must be exact, the executor is driven
directly with an injected clock, sleep and jitter."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from batchsvc.errors import BackendError
from tests.helpers.batches import (
    codes,
    comparable,
    contents,
    create,
    delete,
    get_memory,
    normalised,
    ops_of,
    read,
    search,
    snapshot,
    statuses,
    stored,
    timed_batch,
    update,
)
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MISSING
from tests.helpers.service import Service, ServiceFactory

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


class TestValidateOnlyLikeARun:
    """validate_only meets backend faults and the deadline as a real run would."""

    async def test_backend_error_fails_the_operation(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        faulty.fail("get", error=BackendError("down"))
        status, body = await faulty_service.batch(
            [read(MISSING), create("fine")], {"validate_only": True, "continue_on_error": True}
        )
        assert status == 207
        first, second = ops_of(body)
        assert first["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert second["result"] == {"valid": True}

    async def test_deadline_holds(self, faulty_service: Service, faulty: FaultyStorage) -> None:
        faulty.delay("get", 0.5)
        started = time.monotonic()
        status, body = await faulty_service.batch(
            [read(MISSING)] * 4, {"validate_only": True, "timeout": 100}
        )
        assert time.monotonic() - started < 0.45
        assert status == 207
        codes = [op["error"]["code"] for op in ops_of(body)]
        assert codes[0] == "TIMEOUT" and set(codes) == {"TIMEOUT"}


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


class TestAtomicWaitsWithinItsDeadline:
    """An atomic batch waiting for another one's transaction gives up at its own deadline."""

    async def test_second_atomic_batch_times_out(
        self, faulty_service: Service, faulty: FaultyStorage
    ) -> None:
        faulty.delay("create", 1.0, times=1)
        slow = asyncio.create_task(faulty_service.batch([create("slow")], {"atomic": True}))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        status, body = await faulty_service.batch(
            [create("impatient")], {"atomic": True, "timeout": 100}
        )
        assert time.monotonic() - started < 0.6
        assert status == 422
        assert body["error"]["details"] == {"failed_index": 0}
        assert body["data"]["operations"][0]["error"]["code"] == "TIMEOUT"
        slow_status, _ = await slow
        assert slow_status == 200
        assert [m["content"] for m in await stored(faulty_service)] == ["slow"]
