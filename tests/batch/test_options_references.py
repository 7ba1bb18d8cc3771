"""Batch options of API.md through a real socket: references (`"$N"`), the summary and `attempts`.

Faults and delays come from `FaultyStorage`; where timing must be exact, the executor is driven
directly with an injected clock, sleep and jitter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.batches import (
    codes,
    contents,
    create,
    delete,
    ops_of,
    read,
    search,
    statuses,
    update,
)
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MISSING
from tests.helpers.service import Service

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
