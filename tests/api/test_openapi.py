"""The OpenAPI document: served as shipped, valid OpenAPI 3.1, complete, and true of the live
service (schemathesis sends generated requests to a real server on a loopback socket)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import ClientResponse, web
from attrs import frozen
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from batchsvc.api_keys import KeyStore
from batchsvc.errors import BackendError, ErrorCode
from batchsvc.http.app import create_app
from tests.helpers.faults import FaultyStorage
from tests.helpers.responses import MEMORY_ID
from tests.helpers.service import Service, ServiceFactory, make_config

DOCUMENT_TEXT = files("batchsvc").joinpath("openapi.json").read_text(encoding="utf-8")
DOCUMENT: dict[str, Any] = json.loads(DOCUMENT_TEXT)

# --- reading the document ------------------------------------------------------------------------

DOCUMENT_URI = "urn:batchsvc:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT)
)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _follow(pointer: str) -> tuple[str, Any]:
    """The node at a JSON pointer into the document, through `$ref`s, and where it lives."""
    node: Any = DOCUMENT
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and "$ref" in node:
        return _follow(node["$ref"])
    return pointer, node


def _validate(schema_pointer: str, instance: Any) -> None:
    """Validate against the schema at a pointer, its `$ref`s resolved within the document."""
    validator = Draft202012Validator({"$ref": DOCUMENT_URI + schema_pointer}, registry=REGISTRY)
    validator.validate(instance)


async def assert_documented(response: ClientResponse, path: str, method: str) -> Any:
    """The response's status, content type, body and headers are those the document gives."""
    documented = DOCUMENT["paths"][path][method]["responses"]
    assert str(response.status) in documented, (path, method, response.status)
    where, spec = _follow(_pointer("paths", path, method, "responses", str(response.status)))
    return await _assert_response(response, where, spec)


async def _assert_response(response: ClientResponse, where: str, spec: Any) -> Any:
    assert response.content_type == "application/json"
    body = await response.json()
    _validate(f"{where}/content/application~1json/schema", body)
    for name, header in spec.get("headers", {}).items():
        header_where, header = _follow(f"{where}/headers/{name.replace('/', '~1')}")
        value: Any = response.headers.get(name)
        if value is None:
            assert not header.get("required"), f"missing header {name}"
            continue
        if header["schema"].get("type") == "integer":
            value = int(value)
        _validate(f"{header_where}/schema", value)
    return body


class TestDocument:
    """The document the service serves is the package file, and it is valid and complete."""

    async def test_served_document_is_the_package_file(self, service: Service) -> None:
        response = await service.client.get("/api/v1/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == DOCUMENT

    def test_document_is_valid_openapi_3_1(self) -> None:
        assert DOCUMENT["openapi"] == "3.1.0"
        validate(DOCUMENT)

    def test_file_is_pretty_printed_with_two_spaces(self) -> None:
        pretty = json.dumps(DOCUMENT, indent=2, ensure_ascii=False) + "\n"
        assert pretty == DOCUMENT_TEXT

    def test_every_route_is_documented_and_nothing_else(self, keys_file: Path) -> None:
        app = create_app(make_config(keys_file))
        routes = {
            (route.resource.canonical, route.method.lower())
            for route in app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
        documented = {
            (path, method)
            for path, item in DOCUMENT["paths"].items()
            for method in item
            if method != "parameters"
        }
        assert routes == documented

    def test_error_codes_are_the_closed_set(self) -> None:
        enum = DOCUMENT["components"]["schemas"]["ErrorCode"]["enum"]
        assert enum == [str(code) for code in ErrorCode]

    def test_every_example_fits_its_schema(self) -> None:
        checked = 0
        for path, item in DOCUMENT["paths"].items():
            for method, operation in item.items():
                if method == "parameters":
                    continue
                places: list[tuple[str, ...]] = [
                    ("responses", status) for status in operation["responses"]
                ]
                if "requestBody" in operation:
                    places.append(("requestBody",))
                for place in places:
                    where, holder = _follow(_pointer("paths", path, method, *place))
                    content = holder.get("content", {}).get("application/json", {})
                    for example in content.get("examples", {}).values():
                        _validate(f"{where}/content/application~1json/schema", example["value"])
                        checked += 1
        assert checked >= 10

    def test_public_paths_need_no_key_and_the_rest_do(self) -> None:
        public = {"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"}
        assert DOCUMENT["security"] == [{"bearerAuth": []}]
        for path, item in DOCUMENT["paths"].items():
            for method, operation in item.items():
                if method == "parameters":
                    continue
                if path in public:
                    assert operation["security"] == [], (path, method)
                else:
                    assert "security" not in operation, (path, method)
                    assert "401" in operation["responses"], (path, method)
                    assert "429" in operation["responses"], (path, method)


class TestDocumentedEdges:
    """Responses that generated requests cannot provoke (rate limits, big bodies, a failing
    backend) are what the document says: status, body schema, required headers."""

    async def test_every_protected_operation_answers_401_without_a_key(
        self, service: Service
    ) -> None:
        for path, item in DOCUMENT["paths"].items():
            for method, operation in item.items():
                if method == "parameters" or "security" in operation:
                    continue
                url = path.replace("{id}", "mem_0123456789abcdef")
                response = await service.client.request(method, url)
                assert response.status == 401, (method, path)
                await assert_documented(response, path, method)

    async def test_rate_limits(self, service_factory: ServiceFactory) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "other_requests": 1})
        for _ in range(2):
            batch = await service.client.post(
                "/api/v1/batch",
                json={"operations": [{"type": "search", "query": "x"}]},
                headers=service.auth(),
            )
            listing = await service.client.get("/api/v1/memories", headers=service.auth())
        assert (batch.status, listing.status) == (429, 429)
        body = await assert_documented(batch, "/api/v1/batch", "post")
        assert batch.headers["Retry-After"] == str(body["error"]["details"]["retry_after_seconds"])
        await assert_documented(listing, "/api/v1/memories", "get")

    async def test_bodies_too_large_and_of_the_wrong_type(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(limits={"max_body_bytes": 1000, "max_operations": 3})
        big = json.dumps({"operations": [{"type": "search", "query": "x" * 2000}]})
        too_many = {"operations": [{"type": "search", "query": "x"}] * 4}
        for path in ("/api/v1/batch", "/api/v1/memories", "/api/v1/memories/search"):
            headers = {**service.auth(), "Content-Type": "application/json"}
            response = await service.client.post(path, data=big, headers=headers)
            assert response.status == 413
            body = await assert_documented(response, path, "post")
            assert body["error"]["details"]["provided_bytes"] == len(big)
            response = await service.client.post(
                path, data="{}", headers={**service.auth(), "Content-Type": "text/plain"}
            )
            assert response.status == 415
            await assert_documented(response, path, "post")
        response = await service.client.post("/api/v1/batch", json=too_many, headers=service.auth())
        assert response.status == 413
        body = await assert_documented(response, "/api/v1/batch", "post")
        assert body["error"]["code"] == "BATCH_TOO_LARGE"

    async def test_batch_outcomes(self, service: Service) -> None:
        missing = {"type": "read", "id": "mem_0000000000000000"}
        create = {"type": "create", "data": {"content": "x"}}
        for operations, options, status in [
            ([create], {}, 200),
            ([create, missing, create], {}, 207),
            ([create, missing, create], {"atomic": True}, 422),
            ([create, missing, {"type": "nope"}], {"validate_only": True}, 207),
        ]:
            response = await service.client.post(
                "/api/v1/batch",
                json={"operations": operations, "options": options},
                headers={**service.auth(), "X-Batch-Id": "b-1", "X-Request-Id": "trace 1"},
            )
            assert response.status == status, await response.text()
            body = await assert_documented(response, "/api/v1/batch", "post")
            assert body["data"]["batch_id"] == response.headers["X-Batch-Id"] == "b-1"
            assert response.headers["X-Request-Id"] == "trace 1"

    async def test_methods_a_route_does_not_accept(self, service: Service) -> None:
        _, spec = _follow("#/components/responses/MethodNotAllowed")
        for method, path, allow in [
            ("PUT", "/api/v1/memories", "GET,HEAD,POST"),
            ("GET", "/api/v1/memories/search", "POST"),
            ("DELETE", "/api/v1/memories/search", "POST"),
        ]:
            response = await service.client.request(method, path, headers=service.auth())
            assert response.status == 405, (method, path)
            assert sorted(response.headers["Allow"].split(",")) == allow.split(",")
            await _assert_response(response, "#/components/responses/MethodNotAllowed", spec)

    async def test_a_failing_backend(self, service_factory: ServiceFactory) -> None:
        storage = FaultyStorage()
        service = await service_factory(storage=storage, limits={"operation_timeout_ms": 50})
        memory = f"/api/v1/memories/{await service.create()}"
        storage.fail("ping", error=BackendError("down"))
        response = await service.client.get("/readyz")
        assert response.status == 503
        await assert_documented(response, "/readyz", "get")
        for error, status in [(BackendError("down"), 503), (RuntimeError("bug"), 500)]:
            storage.fail("get", error=error)
            response = await service.client.get(memory, headers=service.auth())
            assert response.status == status
            await assert_documented(response, "/api/v1/memories/{id}", "get")
            storage.fail("list", error=error)
            response = await service.client.get("/api/v1/memories", headers=service.auth())
            assert response.status == status
            await assert_documented(response, "/api/v1/memories", "get")
        storage.delay("get", 1.0, times=1)
        response = await service.client.get(memory, headers=service.auth())
        assert response.status == 504
        await assert_documented(response, "/api/v1/memories/{id}", "get")
        storage.fail("transaction", error=BackendError("down"))
        response = await service.client.post(
            "/api/v1/batch",
            json={
                "operations": [{"type": "read", "id": memory[-20:]}],
                "options": {"atomic": True},
            },
            headers=service.auth(),
        )
        assert response.status == 503
        await assert_documented(response, "/api/v1/batch", "post")


# --- schemathesis against a live server ---------------------------------------------------------


@frozen
class LiveServer:
    url: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server on 127.0.0.1, its own event loop in a thread, generous rate limits."""
    keys_file = tmp_path_factory.mktemp("openapi") / "keys.json"
    app = create_app(make_config(keys_file))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="openapi-live", daemon=True)
    thread.start()
    key = KeyStore(keys_file).create("acme")[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", key)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


# Built at import, not from a fixture: schemathesis's lazy fixture schemas (`from_fixture`)
# rewrite a private pytest attribute that pytest 9 removed. The live server's address and key
# are known only once it runs, so each call is given them (`case.call` below).
schema = schemathesis.openapi.from_dict(
    json.loads(DOCUMENT_TEXT),
    config=schemathesis.Config.from_dict(
        {
            "request-timeout": 30,
            # Enough to find faults, bounded so that this file runs in well under a minute.
            "generation": {"max-examples": 40},
            "checks": {
                # 413 is the spec's answer to a batch over 100 operations.
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "404", "405", "413", "415", "422", "429"]
                }
            },
        }
    ),
)

# Schema-valid requests the service rightly refuses: the document states these rules, but no
# JSON Schema can rule them out in advance.
UNEXPRESSIBLE_REASONS = {
    "invalid_cursor",  # cursors are opaque: only the ones the service gave out are valid
    "embedder_not_configured",  # semantic and hybrid search need an embedder; none is set up
    "too_large",  # metadata over 16 KiB encoded
    "too_deep",  # metadata nested over 8 levels
    "too_many",  # over 64 tags once duplicates are removed
    # a whole number past the 64-bit integers in metadata or a filter (an integer literal that
    # large cannot be kept exactly; JSON Schema has no way to say so for free-form data)
    "number_out_of_range",
}


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _sent_value(case: Any, field: str) -> Any:
    """The value the case sent for a refused field (`options.timeout`, or a query's `limit`)."""
    node: Any = case.body
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return (case.query or {}).get(field)
        node = node[part]
    return node


def _rightly_refused(case: Any, status: int, error: dict[str, Any]) -> bool:
    if status == 422:
        return error.get("code") == "ATOMIC_BATCH_FAILED"
    details = error.get("details", {})
    if status != 400 or not isinstance(details, dict):
        return False
    if details.get("reason") in UNEXPRESSIBLE_REASONS:
        return True
    # JSON Schema counts 1061.0 as an integer; the service takes only integers written as such.
    sent = _sent_value(case, str(details.get("field")))
    return details.get("reason") == "must_be_integer" and isinstance(sent, float)


def _excluded_checks(case: Any, response: Any) -> list[Callable[..., Any]]:
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    excluded: list[Callable[..., Any]] = []
    if isinstance(error, dict) and _rightly_refused(case, response.status_code, error):
        excluded.append(positive_data_acceptance)
    if case.path == "/api/v1/batch" and response.status_code == 207:
        # A malformed operation fails alone (API.md): the batch answers 207, not 400.
        excluded.append(negative_data_rejection)
    return excluded


def _check_batch_counts(response: Any) -> None:
    """What JSON Schema cannot say about a batch response: the counts add up, and the status
    follows the operations."""
    body = _json(response)
    if response.status_code not in (200, 207, 422) or not isinstance(body, dict):
        return
    data = body["data"]
    statuses = [op["status"] for op in data["operations"]]
    assert [op["index"] for op in data["operations"]] == list(range(len(statuses)))
    assert data["total"] == len(statuses)
    for count, status in [
        ("processed", "success"),
        ("failed", "failed"),
        ("skipped", "skipped"),
        ("rolled_back", "rolled_back"),
    ]:
        assert data[count] == statuses.count(status), count
    assert (response.status_code == 200) == all(status == "success" for status in statuses)
    assert (response.status_code == 422) == (body["success"] is False)
    assert "rolled_back" not in statuses or response.status_code == 422
    assert sum(data["summary"].values()) == data["processed"]


def _use_a_real_memory(case: Any, live: LiveServer) -> None:
    """Generated ids name no memory, so every read, update and delete would be a 404: give
    schema-valid cases a memory that exists, so that the success responses are checked too."""
    memory_id = case.path_parameters.get("id") if case.path_parameters else None
    meta = case.meta
    positive = meta is None or meta.generation.mode.is_positive
    if not positive or not isinstance(memory_id, str) or not MEMORY_ID.fullmatch(memory_id):
        return
    created = requests.post(
        f"{live.url}/api/v1/memories",
        json={"content": "a memory to read, update or delete", "metadata": {"n": 1}},
        headers=live.headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    case.path_parameters["id"] = created.json()["data"]["id"]


@schema.parametrize()
def test_service_conforms_to_the_document(case: Any, live: LiveServer) -> None:
    _use_a_real_memory(case, live)
    response = case.call(base_url=live.url, headers=live.headers)
    case.validate_response(response, excluded_checks=_excluded_checks(case, response))
    if case.path == "/api/v1/batch":
        _check_batch_counts(response)
