"""Faults found in review, each pinned by a test: odd input and misbehaving backends never
cost the truth, the deadline or the envelope."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from batchsvc.batch.executor import BatchExecutor
from batchsvc.errors import BackendError
from batchsvc.limits import Limits
from batchsvc.request.batch_body import decode_batch
from tests.helpers.batches import MISSING, ServiceFactory, create, ops_of, read, stored
from tests.helpers.faults import FaultyStorage
from tests.helpers.service import Service


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


class TestOddInput:
    """Odd bytes are client errors with the right code, never a 500."""

    async def test_bearer_token_with_invalid_utf8_is_unauthorized(self, service: Service) -> None:
        server = service.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer bsk_\xff\xfe\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"UNAUTHORIZED"' in answer

    @pytest.mark.parametrize(
        "number",
        [
            "123456789012345678901234567890",
            "18446744073709551616",  # 2^64: the first integer literal orjson reads as a float
            "-9223372036854775809",  # -2^63 - 1
            "1e19",  # a whole float of magnitude 2^63 or more: its digits may not be the sent ones
        ],
    )
    async def test_integers_past_64_bits_fail_their_operation(
        self, service: Service, number: str
    ) -> None:
        """orjson would read them as floats with other digits: the operation fails alone."""
        # Written by hand: json.dumps of a Python int would not show what orjson does.
        raw = (
            '{"operations": ['
            '{"type": "create", "data": {"content": "x", "metadata": {"a": [{"n": NUMBER}]}}},'
            ' {"type": "create", "data": {"content": "fine"}},'
            ' {"type": "search", "query": "x", "options": {"filters": {"n": NUMBER}}}],'
            ' "options": {"continue_on_error": true}}'
        ).replace("NUMBER", number)
        response = await service.client.post(
            "/api/v1/batch",
            data=raw.encode(),
            headers={**service.auth(), "Content-Type": "application/json"},
        )
        assert response.status == 207
        body: dict[str, Any] = await response.json()
        first, second, third = ops_of(body)
        assert first["error"]["details"] == {"field": "metadata", "reason": "number_out_of_range"}
        assert second["status"] == "success"
        assert third["error"]["details"] == {
            "field": "options.filters.n",
            "reason": "number_out_of_range",
        }
        assert [m["content"] for m in await stored(service)] == ["fine"]

    async def test_the_documented_integer_range_is_kept_exactly_at_both_ends(
        self, service: Service
    ) -> None:
        """docs/api.md: integer literals from -2^63 to 2^64 - 1 are kept in metadata and filters."""
        # Written by hand, as above; LOW is -2^63 and HIGH is 2^64 - 1.
        raw = (
            '{"operations": ['
            '{"type": "create", "data": {"content": "ends", "metadata": {"lo": LOW, "hi": HIGH}}},'
            ' {"type": "search", "query": "ends", "options": {"mode": "lexical",'
            ' "filters": {"lo": LOW, "hi": {"$gte": HIGH}}}}]}'
        )
        raw = raw.replace("LOW", "-9223372036854775808").replace("HIGH", "18446744073709551615")
        response = await service.client.post(
            "/api/v1/batch",
            data=raw.encode(),
            headers={**service.auth(), "Content-Type": "application/json"},
        )
        assert response.status == 200, await response.text()
        created, found = ops_of(await response.json())
        [hit] = found["result"]["results"]
        assert hit["id"] == created["result"]["id"]
        assert hit["metadata"] == {"lo": -(2**63), "hi": 2**64 - 1}

    async def test_long_digit_runs_in_strings_and_64_bit_integers_pass(
        self, service: Service
    ) -> None:
        memory_id = await service.create("call 12345678901234567890123", metadata={"n": 2**64 - 1})
        status, body = await service.call("GET", f"/api/v1/memories/{memory_id}")
        assert status == 200
        assert body["data"]["metadata"] == {"n": 2**64 - 1}
