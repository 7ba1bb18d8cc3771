"""Limits of what a memory may hold (`batchsvc.limits`), met through the batch API: a whole
number past the 64-bit integers, in metadata or in a filter, fails its operation alone, and
the documented range is kept exactly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.batches import ops_of, stored
from tests.helpers.service import Service


class TestOddInput:
    """Odd bytes are client errors with the right code, never a 500."""

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
