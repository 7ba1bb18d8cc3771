"""POST /api/v1/batch through a real socket: API.md's request-level rules, row by row and in
their order, then the response-wide rules (rate-limit headers, framework errors, batch ids,
statuses, and crashes that never leak)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse

from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MISSING, assert_error
from tests.helpers.service import Service, ServiceFactory

BATCH = "/api/v1/batch"
ONE_CREATE = {"operations": [{"type": "create", "data": {"content": "hello"}}]}
SMALL_LIMIT = 1000


async def post_raw(
    service: Service,
    data: Any,
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
) -> tuple[ClientResponse, Any]:
    """POST raw bytes (or a stream) to the batch endpoint; `content_type=None` sends none."""
    all_headers = {**service.auth(key), **(headers or {})}
    skip: list[str] = []
    if content_type is None:
        skip.append("Content-Type")
    else:
        all_headers["Content-Type"] = content_type
    response = await service.client.post(
        BATCH, data=data, headers=all_headers, skip_auto_headers=skip
    )
    return response, orjson.loads(await response.read())


def padded_batch(size: int) -> bytes:
    """A valid one-create batch whose JSON encoding is exactly `size` bytes."""
    base = len(orjson.dumps({"operations": [{"type": "create", "data": {"content": ""}}]}))
    body = orjson.dumps(
        {"operations": [{"type": "create", "data": {"content": "x" * (size - base)}}]}
    )
    assert len(body) == size
    return body


def creates(count: int) -> list[dict[str, Any]]:
    return [{"type": "create", "data": {"content": f"memory {i}"}} for i in range(count)]


async def chunks(payload: bytes, size: int = 256) -> AsyncIterator[bytes]:
    """Stream `payload` without a Content-Length (the client sends it chunked)."""
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def memory_count(service: Service, key: str | None = None) -> int:
    response = await service.client.get("/api/v1/memories", headers=service.auth(key))
    assert response.status == 200
    body = await response.json()
    return len(body["data"]["items"])


class TestUnauthorized:
    """Row 1: no or unknown bearer key is 401 UNAUTHORIZED with `WWW-Authenticate: Bearer`."""

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Token bsk_whatever",
            "Bearer bsk_not-a-real-key",
            "Bearer not-even-the-prefix",
        ],
        ids=["none", "empty", "scheme-only", "scheme-blank", "basic", "token", "unknown", "junk"],
    )
    async def test_missing_or_unknown_key(
        self, service: Service, authorization: str | None
    ) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await service.client.post(BATCH, json=ONE_CREATE, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_error(await response.json(), "UNAUTHORIZED", {})
        assert await memory_count(service) == 0

    async def test_the_right_key_under_the_wrong_scheme_is_refused(self, service: Service) -> None:
        headers = {"Authorization": f"Token {service.key}"}
        response = await service.client.post(BATCH, json=ONE_CREATE, headers=headers)
        assert response.status == 401
        assert_error(await response.json(), "UNAUTHORIZED", {})

    async def test_the_scheme_name_is_case_insensitive(self, service: Service) -> None:
        headers = {"Authorization": f"bearer {service.key}"}
        response = await service.client.post(BATCH, json=ONE_CREATE, headers=headers)
        assert response.status == 200

    async def test_a_revoked_key_stops_at_once(self, service: Service) -> None:
        record, secret = service.keys.create("acme")
        status, _ = await service.batch(ONE_CREATE["operations"], key=secret)
        assert status == 200
        service.keys.revoke(record.key_id)
        response = await service.client.post(BATCH, json=ONE_CREATE, headers=service.auth(secret))
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_error(await response.json(), "UNAUTHORIZED", {})
        # The tenant's other key still works.
        status, _ = await service.batch(ONE_CREATE["operations"])
        assert status == 200

    async def test_the_401_does_not_reveal_the_rate_limit_state(self, service: Service) -> None:
        response = await service.client.post(BATCH, json=ONE_CREATE)
        assert response.status == 401
        assert "RateLimit" not in response.headers


class TestRateLimited:
    """Row 2: past the key's batch quota, 429 RATE_LIMITED with `Retry-After` and
    `limit`, `window_seconds`, `retry_after_seconds`."""

    async def test_the_request_after_the_quota_is_refused(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"batch_requests": 2, "window_seconds": 60})
        for _ in range(2):
            status, _ = await service.batch(ONE_CREATE["operations"])
            assert status == 200
        response = await service.client.post(BATCH, json=ONE_CREATE, headers=service.auth())
        assert response.status == 429
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert_error(
            await response.json(),
            "RATE_LIMITED",
            {"limit": 2, "window_seconds": 60, "retry_after_seconds": retry_after},
        )
        assert response.headers["RateLimit-Policy"] == '"batch";q=2;w=60'
        assert re.fullmatch(r'"batch";r=0;t=\d+', response.headers["RateLimit"])
        # The refused batch changed nothing.
        assert await memory_count(service) == 2

    async def test_the_quota_belongs_to_the_key(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "window_seconds": 60})
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 200
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 429
        other_key = service.new_key("acme")
        assert (await service.batch(ONE_CREATE["operations"], key=other_key))[0] == 200

    async def test_other_endpoints_keep_their_own_quota(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "window_seconds": 60})
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 200
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 429
        assert await memory_count(service) == 1


class TestUnsupportedMediaType:
    """Row 3: a Content-Type other than application/json (a charset is fine) is 415."""

    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None],
        ids=["text", "form", "jsonx", "missing"],
    )
    async def test_refused(self, service: Service, content_type: str | None) -> None:
        response, body = await post_raw(
            service, orjson.dumps(ONE_CREATE), content_type=content_type
        )
        assert response.status == 415
        assert_error(body, "UNSUPPORTED_MEDIA_TYPE")
        assert await memory_count(service) == 0

    @pytest.mark.parametrize(
        "content_type", ["application/json", "application/json; charset=utf-8"]
    )
    async def test_accepted(self, service: Service, content_type: str) -> None:
        response, body = await post_raw(
            service, orjson.dumps(ONE_CREATE), content_type=content_type
        )
        assert response.status == 200, body
        assert body["success"] is True


class TestPayloadTooLarge:
    """Row 4: a body over the byte limit is 413 PAYLOAD_TOO_LARGE with `max_bytes` and
    `provided_bytes` where known, and is never buffered past the limit."""

    async def test_declared_length_over_the_limit(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(service, padded_batch(SMALL_LIMIT + 1))
        assert response.status == 413
        assert_error(
            body,
            "PAYLOAD_TOO_LARGE",
            {"max_bytes": SMALL_LIMIT, "provided_bytes": SMALL_LIMIT + 1},
        )
        assert await memory_count(service) == 0

    async def test_exactly_the_limit_is_accepted(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(service, padded_batch(SMALL_LIMIT))
        assert response.status == 200, body

    async def test_chunked_body_over_the_limit(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(service, chunks(padded_batch(3 * SMALL_LIMIT)))
        assert response.status == 413
        details = assert_error(body, "PAYLOAD_TOO_LARGE")
        assert details["max_bytes"] == SMALL_LIMIT
        assert set(details) <= {"max_bytes", "provided_bytes"}
        if "provided_bytes" in details:
            assert details["provided_bytes"] > SMALL_LIMIT
        assert await memory_count(service) == 0

    async def test_chunked_body_within_the_limit_is_accepted(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(service, chunks(padded_batch(SMALL_LIMIT), size=100))
        assert response.status == 200, body

    async def test_the_server_answers_without_waiting_for_the_rest(
        self, service_factory: ServiceFactory
    ) -> None:
        """A stream that passes the limit and then stalls still gets its 413 at once: the
        server stops reading at the limit instead of buffering the whole body."""
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        stall = asyncio.Event()

        async def endless() -> AsyncIterator[bytes]:
            yield b'{"operations": ['
            yield b" " * (2 * SMALL_LIMIT)
            await stall.wait()  # never set: the body never ends
            yield b"]}"

        async with asyncio.timeout(5):
            response, body = await post_raw(service, endless())
        assert response.status == 413
        assert_error(body, "PAYLOAD_TOO_LARGE")


class TestInvalidJson:
    """Row 5: a body that is not valid JSON is 400 INVALID_JSON."""

    @pytest.mark.parametrize(
        "raw",
        [b"", b"{", b"{'operations': []}", b'{"operations": [}', b"NaN", b"\xff\xfe", b"[1,]"],
        ids=["empty", "unclosed", "single-quotes", "bad-array", "nan", "not-utf8", "trailing"],
    )
    async def test_refused(self, service: Service, raw: bytes) -> None:
        response, body = await post_raw(service, raw)
        assert response.status == 400
        assert_error(body, "INVALID_JSON")


class TestOperationsArrayRequired:
    """Row 6: a body that is not an object, or whose `operations` is missing or not an array,
    is 400 INVALID_BATCH_REQUEST with the spec's `operations_array_required`."""

    @pytest.mark.parametrize(
        "body",
        [
            [],
            [{"type": "create", "data": {"content": "x"}}],
            "operations",
            42,
            None,
            {},
            {"options": {}},
            {"operations": None},
            {"operations": {"type": "create", "data": {"content": "x"}}},
            {"operations": "create"},
            {"operations": 3},
        ],
        ids=[
            "empty-array",
            "bare-array",
            "string",
            "number",
            "null",
            "empty-object",
            "options-only",
            "operations-null",
            "operations-object",
            "operations-string",
            "operations-number",
        ],
    )
    async def test_refused(self, service: Service, body: Any) -> None:
        response, decoded = await post_raw(service, orjson.dumps(body))
        assert response.status == 400
        assert_error(
            decoded,
            "INVALID_BATCH_REQUEST",
            {"field": "operations", "reason": "operations_array_required"},
        )


class TestOperationsEmpty:
    """Row 7: an empty `operations` array is 400 INVALID_BATCH_REQUEST, `operations_empty`."""

    async def test_refused(self, service: Service) -> None:
        response, body = await post_raw(service, b'{"operations": []}')
        assert response.status == 400
        assert_error(
            body, "INVALID_BATCH_REQUEST", {"field": "operations", "reason": "operations_empty"}
        )


class TestBatchTooLarge:
    """Row 8: more than 100 operations is 413 BATCH_TOO_LARGE with the spec's details."""

    async def test_101_operations_are_refused(self, service: Service) -> None:
        status, body = await service.batch(creates(101))
        assert status == 413
        assert_error(body, "BATCH_TOO_LARGE", {"max_operations": 100, "provided_operations": 101})
        assert await memory_count(service) == 0

    async def test_100_operations_are_accepted(self, service: Service) -> None:
        status, body = await service.batch(creates(100))
        assert status == 200, body
        assert body["data"]["processed"] == body["data"]["total"] == 100

    async def test_the_limit_is_configurable(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(limits={"max_operations": 3})
        status, body = await service.batch(creates(4))
        assert status == 413
        assert_error(body, "BATCH_TOO_LARGE", {"max_operations": 3, "provided_operations": 4})
        assert (await service.batch(creates(3)))[0] == 200


class TestInvalidOptions:
    """Row 9: `options` not an object, an unknown option, a wrong type or a value out of range
    is 400 INVALID_BATCH_REQUEST naming the `field` and a `reason`; nothing runs."""

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ([], "options"),
            ("fast", "options"),
            (5, "options"),
            ({"retries": 3}, "options.retries"),
            ({"continueOnError": True}, "options.continueOnError"),
            ({"timeout": "30000"}, "options.timeout"),
            ({"timeout": 30000.5}, "options.timeout"),
            ({"timeout": True}, "options.timeout"),
            ({"timeout": None}, "options.timeout"),
            ({"max_retries": True}, "options.max_retries"),
            ({"max_retries": "3"}, "options.max_retries"),
            ({"continue_on_error": "yes"}, "options.continue_on_error"),
            ({"continue_on_error": 1}, "options.continue_on_error"),
            ({"parallel": "false"}, "options.parallel"),
            ({"validate_only": 0}, "options.validate_only"),
            ({"atomic": None}, "options.atomic"),
            ({"timeout": 0}, "options.timeout"),
            ({"timeout": 60001}, "options.timeout"),
            ({"timeout": -1}, "options.timeout"),
            ({"max_retries": 11}, "options.max_retries"),
            ({"max_retries": -1}, "options.max_retries"),
        ],
    )
    async def test_refused(self, service: Service, options: Any, field: str) -> None:
        body = {**ONE_CREATE, "options": options}
        response, decoded = await post_raw(service, orjson.dumps(body))
        assert response.status == 400
        details = assert_error(decoded, "INVALID_BATCH_REQUEST")
        assert set(details) == {"field", "reason"}
        assert details["field"] == field
        assert isinstance(details["reason"], str) and details["reason"]
        assert await memory_count(service) == 0

    @pytest.mark.parametrize(
        ("options", "reason"),
        [
            ({"retries": 3}, "unknown_option"),
            ({"timeout": "30000"}, "must_be_integer"),
            ({"max_retries": True}, "must_be_integer"),
            ({"timeout": 0}, "out_of_range"),
            ({"timeout": 60001}, "out_of_range"),
            ({"max_retries": 11}, "out_of_range"),
        ],
    )
    async def test_the_reason_tells_what_is_wrong(
        self, service: Service, options: dict[str, Any], reason: str
    ) -> None:
        status, body = await service.batch(ONE_CREATE["operations"], options)
        assert status == 400
        assert body["error"]["details"]["reason"] == reason

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"timeout": 1},
            {"timeout": 60000},
            {"max_retries": 0},
            {"max_retries": 10},
            {
                "continue_on_error": True,
                "parallel": False,
                "validate_only": False,
                "atomic": False,
            },
        ],
    )
    async def test_in_range_values_are_accepted(
        self, service: Service, options: dict[str, Any]
    ) -> None:
        status, body = await service.batch(ONE_CREATE["operations"], options)
        if status == 207 and options.get("timeout") == 1:
            # Accepted all the same: 1 ms may run out before the create starts on a busy
            # machine, and then the deadline, not the option check, speaks.
            [op] = body["data"]["operations"]
            assert op["error"]["code"] == "TIMEOUT", body
            return
        assert status == 200, body

    async def test_null_options_are_not_an_object(self, service: Service) -> None:
        """API.md: options that are not an object are refused; null is not an object."""
        response, body = await post_raw(service, orjson.dumps({**ONE_CREATE, "options": None}))
        assert response.status == 400, body
        details = assert_error(body, "INVALID_BATCH_REQUEST")
        assert details == {"field": "options", "reason": "must_be_object"}
        assert await memory_count(service) == 0

    async def test_atomic_with_continue_on_error_is_refused(self, service: Service) -> None:
        status, body = await service.batch(
            ONE_CREATE["operations"], {"atomic": True, "continue_on_error": True}
        )
        assert status == 400
        details = assert_error(body, "INVALID_BATCH_REQUEST")
        assert details["field"] == "options.continue_on_error"
        assert isinstance(details["reason"], str) and details["reason"]
        assert await memory_count(service) == 0


class TestInvalidBatchId:
    """Row 10: an `X-Batch-Id` that is not 1-128 of `A-Z a-z 0-9 . _ : -` is 400
    INVALID_BATCH_REQUEST with `field: "X-Batch-Id"`; nothing runs."""

    @pytest.mark.parametrize(
        "batch_id",
        ["", "x" * 129, "has space", "a/b", "semi;colon", "quote'd", "star*", "a+b"],
        ids=["empty", "129-chars", "space", "slash", "semicolon", "quote", "star", "plus"],
    )
    async def test_refused(self, service: Service, batch_id: str) -> None:
        status, body = await service.batch(
            ONE_CREATE["operations"], headers={"X-Batch-Id": batch_id}
        )
        assert status == 400
        details = assert_error(body, "INVALID_BATCH_REQUEST")
        assert details["field"] == "X-Batch-Id"
        assert isinstance(details["reason"], str) and details["reason"]
        assert await memory_count(service) == 0

    @pytest.mark.parametrize("batch_id", ["x" * 128, "a", "Mig-2024.01_15:part-3"])
    async def test_accepted_and_echoed(self, service: Service, batch_id: str) -> None:
        response = await service.client.post(
            BATCH, json=ONE_CREATE, headers={**service.auth(), "X-Batch-Id": batch_id}
        )
        assert response.status == 200
        assert response.headers["X-Batch-Id"] == batch_id
        assert (await response.json())["data"]["batch_id"] == batch_id


class TestUnknownTopLevelField:
    """A decision of docs/api.md: a batch body field other than `operations` and `options` is
    refused like an unknown option, and nothing runs."""

    async def test_refused(self, service: Service) -> None:
        body = {**ONE_CREATE, "opts": {"timeout": 5}}
        response, decoded = await post_raw(service, orjson.dumps(body))
        assert response.status == 400
        assert_error(decoded, "INVALID_BATCH_REQUEST", {"field": "opts", "reason": "unknown_field"})
        assert await memory_count(service) == 0


class TestRuleOrder:
    """The rules are checked in the table's order: of two broken rules, the earlier decides."""

    async def test_bad_key_before_wrong_content_type(self, service: Service) -> None:
        response, body = await post_raw(
            service, b"not json", content_type="text/plain", key="bsk_unknown"
        )
        assert response.status == 401
        assert_error(body, "UNAUTHORIZED")

    async def test_rate_limit_before_bad_json(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "window_seconds": 60})
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 200
        response, body = await post_raw(service, b"{not json")
        assert response.status == 429
        assert_error(body, "RATE_LIMITED")

    async def test_rate_limit_before_wrong_content_type(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "window_seconds": 60})
        assert (await service.batch(ONE_CREATE["operations"]))[0] == 200
        response, body = await post_raw(service, b"x", content_type="text/plain")
        assert response.status == 429
        assert_error(body, "RATE_LIMITED")

    async def test_wrong_content_type_before_too_large(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(
            service, padded_batch(2 * SMALL_LIMIT), content_type="text/plain"
        )
        assert response.status == 415
        assert_error(body, "UNSUPPORTED_MEDIA_TYPE")

    async def test_too_large_before_bad_json(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        response, body = await post_raw(service, b"{" * (SMALL_LIMIT + 1))
        assert response.status == 413
        assert_error(
            body,
            "PAYLOAD_TOO_LARGE",
            {"max_bytes": SMALL_LIMIT, "provided_bytes": SMALL_LIMIT + 1},
        )

    async def test_too_large_before_too_many_operations(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(limits={"max_body_bytes": SMALL_LIMIT})
        body = orjson.dumps({"operations": creates(101)})
        assert len(body) > SMALL_LIMIT
        response, decoded = await post_raw(service, body)
        assert response.status == 413
        assert_error(decoded, "PAYLOAD_TOO_LARGE")

    async def test_missing_operations_before_bad_options(self, service: Service) -> None:
        response, body = await post_raw(service, orjson.dumps({"options": {"timeout": 0}}))
        assert response.status == 400
        assert body["error"]["details"]["reason"] == "operations_array_required"

    async def test_empty_operations_before_bad_options(self, service: Service) -> None:
        status, body = await service.batch([], {"timeout": "soon"})
        assert status == 400
        assert body["error"]["details"]["reason"] == "operations_empty"

    async def test_too_many_operations_before_bad_options(self, service: Service) -> None:
        status, body = await service.batch(creates(101), {"timeout": 0, "bogus": 1})
        assert status == 413
        assert_error(body, "BATCH_TOO_LARGE", {"max_operations": 100, "provided_operations": 101})

    async def test_bad_options_before_bad_batch_id(self, service: Service) -> None:
        status, body = await service.batch(
            ONE_CREATE["operations"], {"timeout": 0}, headers={"X-Batch-Id": "bad id"}
        )
        assert status == 400
        assert body["error"]["details"]["field"] == "options.timeout"

    async def test_a_bad_operation_does_not_outrank_a_bad_batch_id(self, service: Service) -> None:
        """Operations are validated alone, after every request-level rule."""
        status, body = await service.batch(
            [{"type": "create", "data": {"content": 5}}], headers={"X-Batch-Id": "bad id"}
        )
        assert status == 400
        assert body["error"]["details"]["field"] == "X-Batch-Id"


def _rate_remaining(response: ClientResponse, policy: str) -> int:
    match = re.fullmatch(rf'"{policy}";r=(\d+);t=(\d+)', response.headers["RateLimit"])
    assert match, response.headers["RateLimit"]
    assert 1 <= int(match.group(2)) <= 60
    return int(match.group(1))


class TestRateLimitHeaders:
    """Every response to an authenticated request carries `RateLimit-Policy` and `RateLimit`,
    and `r` counts down request by request, whatever the status."""

    async def test_batch_responses_of_every_kind(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(rate_limit={"batch_requests": 5, "window_seconds": 60})
        auth = service.auth()
        ok = await service.client.post(BATCH, json=ONE_CREATE, headers=auth)
        partial = await service.client.post(
            BATCH,
            json={"operations": [{"type": "read", "id": "mem_0000000000000000"}]},
            headers=auth,
        )
        bad = await service.client.post(
            BATCH, data=b"{", headers={**auth, "Content-Type": "application/json"}
        )
        wrong_method = await service.client.get(BATCH, headers=auth)
        assert [r.status for r in (ok, partial, bad, wrong_method)] == [200, 207, 400, 405]
        for response in (ok, partial, bad, wrong_method):
            assert response.headers["RateLimit-Policy"] == '"batch";q=5;w=60'
        remaining = [_rate_remaining(r, "batch") for r in (ok, partial, bad, wrong_method)]
        assert remaining == [4, 3, 2, 1]

    async def test_other_endpoints_and_unknown_routes(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"other_requests": 50, "window_seconds": 60})
        auth = service.auth()
        created = await service.client.post("/api/v1/memories", json={"content": "x"}, headers=auth)
        missing = await service.client.get("/api/v1/memories/mem_0000000000000000", headers=auth)
        unknown = await service.client.get("/api/v1/no-such-route", headers=auth)
        assert [r.status for r in (created, missing, unknown)] == [201, 404, 404]
        for response in (created, missing, unknown):
            assert response.headers["RateLimit-Policy"] == '"api";q=50;w=60'
        remaining = [_rate_remaining(r, "api") for r in (created, missing, unknown)]
        assert remaining == [49, 48, 47]


class TestFrameworkErrors:
    """The framework's own 404 and 405 come in the spec's envelope, keeping its headers."""

    async def test_unknown_api_route(self, service: Service) -> None:
        response = await service.client.get("/api/v1/nothing-here", headers=service.auth())
        assert response.status == 404
        assert_error(await response.json(), "NOT_FOUND")

    async def test_unknown_route_outside_the_api(self, service: Service) -> None:
        response = await service.client.get("/nothing-here")
        assert response.status == 404
        assert_error(await response.json(), "NOT_FOUND")

    async def test_unknown_api_route_needs_a_key_first(self, service: Service) -> None:
        response = await service.client.get("/api/v1/nothing-here")
        assert response.status == 401
        assert_error(await response.json(), "UNAUTHORIZED")

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    async def test_wrong_method_keeps_allow(self, service: Service, method: str) -> None:
        response = await service.client.request(method, BATCH, headers=service.auth())
        assert response.status == 405
        assert "POST" in [m.strip() for m in response.headers["Allow"].split(",")]
        assert response.content_type == "application/json"
        assert_error(await response.json(), "NOT_FOUND")


BATCH_ID = re.compile(r"batch_[0-9a-f]{16}")


class TestBatchId:
    """`X-Batch-Id` becomes `batch_id` and is echoed; without it the server makes
    `batch_` + 16 lowercase hex, a new one each time."""

    async def test_echoed(self, service: Service) -> None:
        response = await service.client.post(
            BATCH, json=ONE_CREATE, headers={**service.auth(), "X-Batch-Id": "import:42"}
        )
        assert response.headers["X-Batch-Id"] == "import:42"
        assert (await response.json())["data"]["batch_id"] == "import:42"

    async def test_the_same_id_twice_runs_twice(self, service: Service) -> None:
        """For tracking, not deduplication."""
        for _ in range(2):
            status, _ = await service.batch(
                ONE_CREATE["operations"], headers={"X-Batch-Id": "same"}
            )
            assert status == 200
        assert await memory_count(service) == 2

    async def test_generated(self, service: Service) -> None:
        seen = set()
        for _ in range(2):
            response = await service.client.post(BATCH, json=ONE_CREATE, headers=service.auth())
            batch_id = (await response.json())["data"]["batch_id"]
            assert BATCH_ID.fullmatch(batch_id), batch_id
            assert response.headers["X-Batch-Id"] == batch_id
            seen.add(batch_id)
        assert len(seen) == 2

    async def test_generated_on_partial_success(self, service: Service) -> None:
        response = await service.client.post(
            BATCH,
            json={"operations": [{"type": "read", "id": "mem_0000000000000000"}]},
            headers=service.auth(),
        )
        assert response.status == 207
        batch_id = (await response.json())["data"]["batch_id"]
        assert BATCH_ID.fullmatch(batch_id)
        assert response.headers["X-Batch-Id"] == batch_id


def assert_counts_add_up(data: dict[str, Any]) -> None:
    statuses = [op["status"] for op in data["operations"]]
    assert data["total"] == len(statuses)
    assert data["processed"] == statuses.count("success")
    assert data["failed"] == statuses.count("failed")
    assert data["skipped"] == statuses.count("skipped")
    assert data.get("rolled_back", 0) == statuses.count("rolled_back")
    assert (
        data["processed"] + data["failed"] + data["skipped"] + data.get("rolled_back", 0)
        == data["total"]
    )


class TestBatchStatus:
    """200 when every operation succeeded, 207 (still `success: true`) otherwise; the counts
    always add up to `total`."""

    async def test_all_succeed(self, service: Service) -> None:
        status, body = await service.batch([*creates(3), {"type": "read", "id": "$0"}])
        assert status == 200
        assert body["success"] is True
        assert_counts_add_up(body["data"])
        assert body["data"]["processed"] == 4

    async def test_one_fails_and_the_rest_continue(self, service: Service) -> None:
        ops = [*creates(1), {"type": "read", "id": MISSING}, *creates(1)]
        status, body = await service.batch(ops, {"continue_on_error": True})
        assert status == 207
        assert body["success"] is True
        data = body["data"]
        assert_counts_add_up(data)
        assert (data["processed"], data["failed"], data["skipped"]) == (2, 1, 0)
        assert data["operations"][1]["error"]["code"] == "NOT_FOUND"

    async def test_one_fails_and_the_rest_are_skipped(self, service: Service) -> None:
        ops = [*creates(1), {"type": "read", "id": MISSING}, *creates(2)]
        status, body = await service.batch(ops)
        assert status == 207
        assert body["success"] is True
        data = body["data"]
        assert_counts_add_up(data)
        assert (data["processed"], data["failed"], data["skipped"]) == (1, 1, 2)
        assert await memory_count(service) == 1

    async def test_an_invalid_operation_fails_alone(self, service: Service) -> None:
        ops = [*creates(1), {"type": "create", "data": {"content": 5}}, *creates(1)]
        status, body = await service.batch(ops, {"continue_on_error": True})
        assert status == 207
        assert_counts_add_up(body["data"])
        assert body["data"]["operations"][1]["error"]["details"] == {
            "field": "content",
            "reason": "must_be_string",
        }

    async def test_atomic_failure_counts_rolled_back(self, service: Service) -> None:
        ops = [*creates(2), {"type": "read", "id": MISSING}]
        status, body = await service.batch(ops, {"atomic": True})
        assert status == 422
        assert body["success"] is False
        assert body["error"]["code"] == "ATOMIC_BATCH_FAILED"
        assert body["error"]["details"] == {"failed_index": 2}
        assert_counts_add_up(body["data"])
        assert [op["status"] for op in body["data"]["operations"]] == [
            "rolled_back",
            "rolled_back",
            "failed",
        ]
        assert await memory_count(service) == 0


SECRET = "secret-internal-detail-7f3a"


def crashing_store() -> FaultyStorage:
    """The in-memory backend, except that `get` and `list` fail with an unexpected error (a bug
    in a backend, not a BackendError it meant to raise)."""
    store = FaultyStorage()
    for method in ("get", "list"):
        store.fail(method, times=1000, error=RuntimeError(f"{SECRET}: {method} exploded"))
    return store


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert SECRET not in text
    assert "exploded" not in text
    assert ".py" not in text


class TestInternalErrors:
    """An unexpected fault is INTERNAL_ERROR: in a batch it fails its operation alone; on a
    single endpoint it is a 500 in the envelope. Neither shows a traceback or internal detail."""

    async def test_in_a_batch_only_the_faulty_operation_fails(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(storage=crashing_store())
        ops = [*creates(1), {"type": "read", "id": "$0"}, *creates(1)]
        response = await service.client.post(
            BATCH,
            json={"operations": ops, "options": {"continue_on_error": True}},
            headers=service.auth(),
        )
        text = await response.text()
        assert response.status == 207
        assert_no_leak(text)
        data = orjson.loads(text)["data"]
        assert_counts_add_up(data)
        assert [op["status"] for op in data["operations"]] == ["success", "failed", "success"]
        error = data["operations"][1]["error"]
        assert error["code"] == "INTERNAL_ERROR"
        assert error["details"] == {}
        assert data["operations"][1]["attempts"] == 1  # never retried

    async def test_single_read_answers_500(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(storage=crashing_store())
        created = await service.client.post(
            "/api/v1/memories", json={"content": "x"}, headers=service.auth()
        )
        memory_id = (await created.json())["data"]["id"]
        response = await service.client.get(f"/api/v1/memories/{memory_id}", headers=service.auth())
        text = await response.text()
        assert response.status == 500
        assert response.content_type == "application/json"
        assert_no_leak(text)
        assert_error(orjson.loads(text), "INTERNAL_ERROR")

    async def test_a_crash_outside_the_executor_answers_500(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(storage=crashing_store())
        response = await service.client.get("/api/v1/memories", headers=service.auth())
        text = await response.text()
        assert response.status == 500
        assert_no_leak(text)
        assert_error(orjson.loads(text), "INTERNAL_ERROR")
        # The service is still up.
        status, _ = await service.batch(creates(1))
        assert status == 200
