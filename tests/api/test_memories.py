"""The single-memory endpoints of API.md, through a real socket: create, read, update, delete,
search and list, their validation, and that one operation means the same here as in a batch."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from tests.helpers.responses import MEMORY_ID, MISSING, assert_error
from tests.helpers.service import Service

MEMORIES = "/api/v1/memories"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
MEMORY_FIELDS = {
    "id",
    "content",
    "title",
    "memory_type",
    "metadata",
    "tags",
    "created_at",
    "updated_at",
    "version",
}
HIT_FIELDS = MEMORY_FIELDS - {"version"} | {"score"}


async def create(service: Service, key: str | None = None, **data: Any) -> str:
    status, body = await service.call(
        "POST", MEMORIES, json={"content": "a memory", **data}, key=key
    )
    assert status == 201, body
    memory_id: str = body["data"]["id"]
    return memory_id


async def read(service: Service, memory_id: str, key: str | None = None) -> dict[str, Any]:
    status, body = await service.call("GET", f"{MEMORIES}/{memory_id}", key=key)
    assert status == 200, body
    memory: dict[str, Any] = body["data"]
    return memory


def flatten(pages: list[list[str]]) -> list[str]:
    return [memory_id for page in pages for memory_id in page]


def nested(depth: int) -> dict[str, Any]:
    """A metadata object `depth` levels deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


class TestCreate:
    """POST /api/v1/memories is 201 with `{success: true, data: {id, created_at}}`; the stored
    memory has the resource's defaults."""

    async def test_created(self, service: Service) -> None:
        status, body = await service.call("POST", MEMORIES, json={"content": "hello"})
        assert status == 201
        assert body["success"] is True
        assert set(body["data"]) == {"id", "created_at"}
        assert MEMORY_ID.fullmatch(body["data"]["id"])
        assert TIMESTAMP.fullmatch(body["data"]["created_at"])

    async def test_defaults(self, service: Service) -> None:
        memory = await read(service, await create(service, content="hello"))
        assert set(memory) == MEMORY_FIELDS
        assert memory["content"] == "hello"
        assert memory["title"] is None
        assert memory["memory_type"] == "context"
        assert memory["metadata"] == {}
        assert memory["tags"] == []
        assert memory["version"] == 1
        assert memory["created_at"] == memory["updated_at"]

    async def test_every_field(self, service: Service) -> None:
        memory_id = await create(
            service,
            content="full",
            title="A title",
            memory_type="knowledge",
            metadata={"a": {"b": [1, 2]}, "n": None},
            tags=["z", "a", "z", "m", "a"],
        )
        memory = await read(service, memory_id)
        assert memory["title"] == "A title"
        assert memory["memory_type"] == "knowledge"
        assert memory["metadata"] == {"a": {"b": [1, 2]}, "n": None}
        assert memory["tags"] == ["z", "a", "m"]  # duplicates removed, order kept

    async def test_ids_are_new_each_time(self, service: Service) -> None:
        ids = {await create(service) for _ in range(5)}
        assert len(ids) == 5

    async def test_same_body_rules_as_the_batch(self, service: Service) -> None:
        response = await service.client.post(
            MEMORIES,
            data=b'{"content": "x"}',
            headers={**service.auth(), "Content-Type": "text/plain"},
        )
        assert response.status == 415
        assert_error(await response.json(), "UNSUPPORTED_MEDIA_TYPE")
        response = await service.client.post(
            MEMORIES, data=b"{", headers={**service.auth(), "Content-Type": "application/json"}
        )
        assert response.status == 400
        assert_error(await response.json(), "INVALID_JSON")

    async def test_same_byte_limit_as_the_batch(self, service_factory: Any) -> None:
        service = await service_factory(limits={"max_body_bytes": 100})
        body = orjson.dumps({"content": "x" * 100})
        response = await service.client.post(
            MEMORIES, data=body, headers={**service.auth(), "Content-Type": "application/json"}
        )
        assert response.status == 413
        assert_error(
            await response.json(),
            "PAYLOAD_TOO_LARGE",
            {"max_bytes": 100, "provided_bytes": len(body)},
        )

    @pytest.mark.parametrize("body", [[], "content", 5, None])
    async def test_body_must_be_an_object(self, service: Service, body: Any) -> None:
        response = await service.client.post(
            MEMORIES,
            data=orjson.dumps(body),
            headers={**service.auth(), "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert_error(await response.json(), "VALIDATION_ERROR")


class TestRead:
    """GET /api/v1/memories/{id} answers the whole memory, or 404 NOT_FOUND with `id`."""

    async def test_whole_memory(self, service: Service) -> None:
        memory_id = await create(service, content="read me", tags=["t"])
        status, body = await service.call("GET", f"{MEMORIES}/{memory_id}")
        assert status == 200
        assert body["success"] is True
        assert set(body["data"]) == MEMORY_FIELDS
        assert body["data"]["id"] == memory_id
        assert body["data"]["content"] == "read me"
        assert body["data"]["tags"] == ["t"]

    async def test_missing(self, service: Service) -> None:
        status, body = await service.call("GET", f"{MEMORIES}/{MISSING}")
        assert status == 404
        assert_error(body, "NOT_FOUND", {"id": MISSING})

    @pytest.mark.parametrize(
        "bad_id",
        ["nope", "mem_123", "mem_ABCDEF0123456789", "mem_0123456789abcdefa", "$0", "123"],
    )
    @pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
    async def test_malformed_id(self, service: Service, method: str, bad_id: str) -> None:
        json = {"content": "x"} if method == "PATCH" else None
        status, body = await service.call(method, f"{MEMORIES}/{bad_id}", json=json)
        assert status == 400
        details = assert_error(body, "VALIDATION_ERROR")
        assert details["field"] == "id"
        assert isinstance(details["reason"], str) and details["reason"]


class TestUpdate:
    """PATCH /api/v1/memories/{id}: metadata is a JSON Merge Patch (null removes a key), the
    other fields replace; each update adds 1 to `version` and sets `updated_at`."""

    async def test_merge_patch_on_metadata(self, service: Service) -> None:
        memory_id = await create(
            service, metadata={"a": 1, "b": {"c": 2, "d": 3}, "e": 5, "list": [1, 2]}
        )
        status, body = await service.call(
            "PATCH",
            f"{MEMORIES}/{memory_id}",
            json={"metadata": {"b": {"c": None, "x": 1}, "e": None, "f": "new", "list": [3]}},
        )
        assert status == 200, body
        assert set(body["data"]) == {"id", "updated_at", "version"}
        assert body["data"]["id"] == memory_id
        assert body["data"]["version"] == 2
        memory = await read(service, memory_id)
        assert memory["metadata"] == {"a": 1, "b": {"d": 3, "x": 1}, "f": "new", "list": [3]}
        assert memory["updated_at"] == body["data"]["updated_at"]
        assert memory["updated_at"] >= memory["created_at"]

    async def test_other_fields_replace(self, service: Service) -> None:
        memory_id = await create(
            service, content="old", title="Old", memory_type="project", tags=["a", "b"]
        )
        status, _ = await service.call(
            "PATCH",
            f"{MEMORIES}/{memory_id}",
            json={"content": "new", "tags": ["c"], "memory_type": "workflow"},
        )
        assert status == 200
        memory = await read(service, memory_id)
        assert (memory["content"], memory["tags"], memory["memory_type"]) == (
            "new",
            ["c"],
            "workflow",
        )
        assert memory["title"] == "Old"  # untouched
        status, _ = await service.call("PATCH", f"{MEMORIES}/{memory_id}", json={"title": None})
        assert status == 200
        memory = await read(service, memory_id)
        assert memory["title"] is None
        assert memory["version"] == 3

    async def test_version_counts_updates(self, service: Service) -> None:
        memory_id = await create(service)
        for expected in range(2, 6):
            status, body = await service.call(
                "PATCH", f"{MEMORIES}/{memory_id}", json={"content": f"v{expected}"}
            )
            assert status == 200
            assert body["data"]["version"] == expected
        assert (await read(service, memory_id))["version"] == 5

    async def test_content_change_reindexes(self, service: Service) -> None:
        memory_id = await create(service, content="aardvark burrow")
        await service.call("PATCH", f"{MEMORIES}/{memory_id}", json={"content": "zebra stripes"})
        _, old = await service.call("POST", f"{MEMORIES}/search", json={"query": "aardvark"})
        _, new = await service.call("POST", f"{MEMORIES}/search", json={"query": "zebra"})
        assert old["data"]["total"] == 0
        assert [hit["id"] for hit in new["data"]["results"]] == [memory_id]

    async def test_missing(self, service: Service) -> None:
        status, body = await service.call("PATCH", f"{MEMORIES}/{MISSING}", json={"content": "x"})
        assert status == 404
        assert_error(body, "NOT_FOUND", {"id": MISSING})

    async def test_empty_update_is_refused(self, service: Service) -> None:
        memory_id = await create(service)
        status, body = await service.call("PATCH", f"{MEMORIES}/{memory_id}", json={})
        assert status == 400
        assert_error(body, "VALIDATION_ERROR")
        assert (await read(service, memory_id))["version"] == 1

    @pytest.mark.parametrize(
        ("data", "field", "reason"),
        [
            ({"content": 5}, "content", "must_be_string"),
            ({"content": None}, "content", "must_be_string"),
            ({"content": "  "}, "content", "blank"),
            ({"tags": "xy"}, "tags", "must_be_array"),
            ({"tags": ["a", 5]}, "tags[1]", "must_be_string"),
            ({"metdata": {}}, "metdata", "unknown_field"),
            ({"memory_type": "bogus"}, "memory_type", "invalid_choice"),
            ({"metadata": ["x"]}, "metadata", "must_be_object"),
        ],
    )
    async def test_invalid_changes_nothing(
        self, service: Service, data: dict[str, Any], field: str, reason: str
    ) -> None:
        memory_id = await create(service, content="keep")
        before = await read(service, memory_id)
        status, body = await service.call("PATCH", f"{MEMORIES}/{memory_id}", json=data)
        assert status == 400
        assert_error(body, "VALIDATION_ERROR", {"field": field, "reason": reason})
        assert await read(service, memory_id) == before

    async def test_merged_metadata_over_the_limit_changes_nothing(self, service: Service) -> None:
        memory_id = await create(service, metadata={"a": "x" * 10_000})
        status, body = await service.call(
            "PATCH", f"{MEMORIES}/{memory_id}", json={"metadata": {"b": "y" * 10_000}}
        )
        assert status == 400
        assert_error(body, "VALIDATION_ERROR", {"field": "metadata", "reason": "too_large"})
        memory = await read(service, memory_id)
        assert memory["metadata"] == {"a": "x" * 10_000}
        assert memory["version"] == 1


class TestDelete:
    """DELETE /api/v1/memories/{id} answers `{id, deleted: true}`; afterwards the id is
    NOT_FOUND everywhere."""

    async def test_delete_then_gone(self, service: Service) -> None:
        memory_id = await create(service, content="doomed unicorn")
        status, body = await service.call("DELETE", f"{MEMORIES}/{memory_id}")
        assert status == 200
        assert body == {"success": True, "data": {"id": memory_id, "deleted": True}}
        for method, json in (("GET", None), ("DELETE", None), ("PATCH", {"content": "x"})):
            status, body = await service.call(method, f"{MEMORIES}/{memory_id}", json=json)
            assert status == 404
            assert_error(body, "NOT_FOUND", {"id": memory_id})
        _, found = await service.call("POST", f"{MEMORIES}/search", json={"query": "unicorn"})
        assert found["data"]["total"] == 0
        _, listed = await service.call("GET", MEMORIES)
        assert listed["data"]["items"] == []

    async def test_delete_leaves_the_others(self, service: Service) -> None:
        keep = await create(service, content="keep")
        drop = await create(service, content="drop")
        await service.call("DELETE", f"{MEMORIES}/{drop}")
        assert (await read(service, keep))["content"] == "keep"


class TestSearch:
    """POST /api/v1/memories/search has the batch `search` semantics: `{results, total}`, hits
    sorted by a score in [0, 1], filters on metadata, tags (all), memory_type, limit."""

    @pytest.fixture
    async def corpus(self, service: Service) -> dict[str, str]:
        return {
            "red": await create(
                service,
                content="apple pie recipe with red apples",
                tags=["food", "red"],
                metadata={"category": "dessert", "stars": 5},
                memory_type="knowledge",
            ),
            "green": await create(
                service,
                content="green apple smoothie",
                tags=["food", "green"],
                metadata={"category": "drink", "stars": 3},
            ),
            "car": await create(service, content="a red car", tags=["red"]),
        }

    async def search(self, service: Service, body: dict[str, Any]) -> dict[str, Any]:
        status, response = await service.call("POST", f"{MEMORIES}/search", json=body)
        assert status == 200, response
        assert response["success"] is True
        data: dict[str, Any] = response["data"]
        assert set(data) == {"results", "total"}
        assert data["total"] == len(data["results"])
        scores = [hit["score"] for hit in data["results"]]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= score <= 1 for score in scores)
        for hit in data["results"]:
            assert set(hit) >= HIT_FIELDS
        return data

    async def test_finds_by_text(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(service, {"query": "apple"})
        assert {hit["id"] for hit in data["results"]} == {corpus["red"], corpus["green"]}

    async def test_limit(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(service, {"query": "apple", "options": {"limit": 1}})
        assert data["total"] == 1

    async def test_metadata_filter(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(
            service, {"query": "apple", "options": {"filters": {"category": "drink"}}}
        )
        assert [hit["id"] for hit in data["results"]] == [corpus["green"]]
        data = await self.search(
            service, {"query": "apple", "options": {"filters": {"stars": {"$gte": 4}}}}
        )
        assert [hit["id"] for hit in data["results"]] == [corpus["red"]]

    async def test_tags_must_all_match(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(
            service, {"query": "apple red car", "options": {"tags": ["food", "red"]}}
        )
        assert [hit["id"] for hit in data["results"]] == [corpus["red"]]

    async def test_memory_type(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(
            service, {"query": "apple", "options": {"memory_type": "knowledge"}}
        )
        assert [hit["id"] for hit in data["results"]] == [corpus["red"]]

    async def test_no_hits(self, service: Service, corpus: dict[str, str]) -> None:
        data = await self.search(service, {"query": "submarine"})
        assert data == {"results": [], "total": 0}

    @pytest.mark.parametrize(
        ("body", "field", "reason"),
        [
            ({}, "query", "required"),
            ({"query": ""}, "query", "too_short"),
            ({"query": 5}, "query", "must_be_string"),
            ({"query": "x" * 1001}, "query", "too_long"),
            ({"query": "x", "options": {"limit": 0}}, "options.limit", "out_of_range"),
            ({"query": "x", "options": {"limit": 101}}, "options.limit", "out_of_range"),
            ({"query": "x", "options": {"limit": "5"}}, "options.limit", "must_be_integer"),
            ({"query": "x", "options": {"bogus": 1}}, "options.bogus", "unknown_field"),
            ({"query": "x", "options": {"threshold": 2}}, "options.threshold", "out_of_range"),
            ({"query": "x", "extra": 1}, "extra", "unknown_field"),
        ],
    )
    async def test_invalid(
        self, service: Service, body: dict[str, Any], field: str, reason: str
    ) -> None:
        status, response = await service.call("POST", f"{MEMORIES}/search", json=body)
        assert status == 400
        assert_error(response, "VALIDATION_ERROR", {"field": field, "reason": reason})


class TestList:
    """GET /api/v1/memories lists newest first, a page at a time through an opaque cursor,
    filtered by tag (repeatable, all must match) and memory_type."""

    async def pages(self, service: Service, params: list[tuple[str, str]]) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            query = [*params, *([("cursor", cursor)] if cursor else [])]
            status, body = await service.call("GET", MEMORIES, params=query)
            assert status == 200, body
            assert set(body["data"]) == {"items", "next_cursor"}
            for item in body["data"]["items"]:
                assert set(item) == MEMORY_FIELDS
            pages.append([item["id"] for item in body["data"]["items"]])
            cursor = body["data"]["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 100, "the cursor does not advance"

    async def test_pages_cover_everything_once_newest_first(self, service: Service) -> None:
        created = [await create(service, content=f"memory {i}") for i in range(25)]
        pages = await self.pages(service, [("limit", "10")])
        assert [len(page) for page in pages] == [10, 10, 5]
        assert flatten(pages) == list(reversed(created))

    async def test_a_full_last_page(self, service: Service) -> None:
        created = [await create(service) for _ in range(4)]
        pages = await self.pages(service, [("limit", "2")])
        assert flatten(pages) == list(reversed(created))

    async def test_empty(self, service: Service) -> None:
        status, body = await service.call("GET", MEMORIES)
        assert status == 200
        assert body == {"success": True, "data": {"items": [], "next_cursor": None}}

    async def test_tags_all_must_match(self, service: Service) -> None:
        both = await create(service, tags=["a", "b"])
        await create(service, tags=["a"])
        await create(service, tags=["b", "c"])
        both_too = await create(service, tags=["c", "b", "a"])
        pages = await self.pages(service, [("tag", "a"), ("tag", "b"), ("limit", "1")])
        assert flatten(pages) == [both_too, both]

    async def test_memory_type(self, service: Service) -> None:
        wanted = [await create(service, memory_type="personal") for _ in range(3)]
        await create(service, memory_type="project")
        await create(service)
        pages = await self.pages(service, [("memory_type", "personal"), ("limit", "2")])
        assert flatten(pages) == list(reversed(wanted))

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": "0"}, "limit"),
            ({"limit": "101"}, "limit"),
            ({"limit": "-1"}, "limit"),
            ({"limit": "abc"}, "limit"),
            ({"limit": "1.5"}, "limit"),
            ({"limit": ""}, "limit"),
            ({"limit": "²"}, "limit"),
            ({"limit": "9" * 5000}, "limit"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"cursor": ""}, "cursor"),
            ({"memory_type": "bogus"}, "memory_type"),
            ({"page": "2"}, "page"),
            ({"tags": "a"}, "tags"),
        ],
        ids=lambda value: str(value)[:20],
    )
    async def test_bad_parameters(
        self, service: Service, params: dict[str, str], field: str
    ) -> None:
        await create(service)
        status, body = await service.call("GET", MEMORIES, params=params)
        assert status == 400
        details = assert_error(body, "VALIDATION_ERROR")
        assert details["field"] == field
        assert isinstance(details["reason"], str) and details["reason"]


TOO_DEEP = nested(9)


class TestValidation:
    """Create validation names the field by its path, gives a reason, and never coerces."""

    @pytest.mark.parametrize(
        ("data", "field", "reason"),
        [
            ({}, "content", "required"),
            ({"content": 5}, "content", "must_be_string"),
            ({"content": None}, "content", "must_be_string"),
            ({"content": ["x"]}, "content", "must_be_string"),
            ({"content": ""}, "content", "blank"),
            ({"content": " \n\t "}, "content", "blank"),
            ({"content": "x" * 100_001}, "content", "too_long"),
            ({"content": "x", "title": "t" * 501}, "title", "too_long"),
            ({"content": "x", "title": 5}, "title", "must_be_string"),
            ({"content": "x", "memory_type": "bogus"}, "memory_type", "invalid_choice"),
            ({"content": "x", "memory_type": "Context"}, "memory_type", "invalid_choice"),
            ({"content": "x", "tags": "xy"}, "tags", "must_be_array"),
            ({"content": "x", "tags": ["a", 5]}, "tags[1]", "must_be_string"),
            ({"content": "x", "tags": ["a", ""]}, "tags[1]", "too_short"),
            ({"content": "x", "tags": ["t" * 65]}, "tags[0]", "too_long"),
            ({"content": "x", "tags": [f"t{i}" for i in range(65)]}, "tags", "too_many"),
            ({"content": "x", "metdata": {}}, "metdata", "unknown_field"),
            ({"content": "x", "metadata": "x"}, "metadata", "must_be_object"),
            ({"content": "x", "metadata": TOO_DEEP}, "metadata", "too_deep"),
            ({"content": "x", "metadata": {"b": "x" * 16_377}}, "metadata", "too_large"),
        ],
        ids=lambda value: str(value)[:30],
    )
    async def test_refused(
        self, service: Service, data: dict[str, Any], field: str, reason: str
    ) -> None:
        status, body = await service.call("POST", MEMORIES, json=data)
        assert status == 400
        assert_error(body, "VALIDATION_ERROR", {"field": field, "reason": reason})
        _, listed = await service.call("GET", MEMORIES)
        assert listed["data"]["items"] == []

    @pytest.mark.parametrize(
        ("text", "blank"),
        [
            ("\u3000\u00a0\ufeff\u2028 \t", True),  # white space to JSON Schema's \s
            ("\u001d", False),  # Python's isspace() says blank; the document's pattern does not
            ("\u001c\u001f\u0085", False),
        ],
    )
    async def test_blank_is_what_the_documents_pattern_says(
        self, service: Service, text: str, blank: bool
    ) -> None:
        """The document's `"pattern": "\\S"` (ECMA-262 white space) decides, not Python's."""
        status, body = await service.call("POST", MEMORIES, json={"content": text, "tags": [text]})
        if blank:
            assert status == 400
            assert_error(body, "VALIDATION_ERROR", {"field": "content", "reason": "blank"})
        else:
            assert status == 201, body

    @pytest.mark.parametrize(
        "data",
        [
            {"content": "x" * 100_000},
            {"content": "x", "title": "t" * 500},
            {"content": "x", "title": None},
            {"content": "x", "tags": ["t" * 64]},
            {"content": "x", "tags": [f"t{i}" for i in range(64)]},
            {"content": "x", "metadata": nested(8)},
            {"content": "x", "metadata": {"b": "x" * 16_376}},  # exactly 16 KiB encoded
        ],
        ids=lambda value: str(value)[:30],
    )
    async def test_limits_are_inclusive(self, service: Service, data: dict[str, Any]) -> None:
        status, body = await service.call("POST", MEMORIES, json=data)
        assert status == 201, body

    async def test_content_limit_is_configurable(self, service_factory: Any) -> None:
        service = await service_factory(limits={"max_content_chars": 10})
        status, body = await service.call("POST", MEMORIES, json={"content": "x" * 11})
        assert status == 400
        assert_error(body, "VALIDATION_ERROR", {"field": "content", "reason": "too_long"})
        status, _ = await service.call("POST", MEMORIES, json={"content": "x" * 10})
        assert status == 201


class TestHealth:
    """Liveness and readiness answer 200 without a key."""

    @pytest.mark.parametrize("path", ["/healthz", "/readyz"])
    async def test_no_key_needed(self, service: Service, path: str) -> None:
        response = await service.client.get(path)
        assert response.status == 200
        assert response.content_type == "application/json"
        assert isinstance(await response.json(), dict)


class TestSameMeaning:
    """One operation, one meaning: the single endpoints give exactly what the same operation
    gives inside a batch."""

    @pytest.mark.parametrize(
        "data",
        [
            {"content": 5},
            {"content": "   "},
            {"content": "x", "tags": ["a", 5]},
            {"content": "x", "metdata": {}},
            {"content": "x", "memory_type": "bogus"},
            {"content": "x", "metadata": TOO_DEEP},
            {"title": "no content"},
        ],
        ids=lambda value: str(value)[:30],
    )
    async def test_bad_create(self, service: Service, data: dict[str, Any]) -> None:
        status, single = await service.call("POST", MEMORIES, json=data)
        assert status == 400
        _, batch = await service.batch([{"type": "create", "data": data}])
        operation = batch["data"]["operations"][0]
        assert operation["status"] == "failed"
        assert operation["error"] == single["error"]

    @pytest.mark.parametrize(
        ("method", "op", "json"),
        [
            ("GET", {"type": "read"}, None),
            ("DELETE", {"type": "delete"}, None),
            ("PATCH", {"type": "update", "data": {"content": "x"}}, {"content": "x"}),
        ],
    )
    async def test_missing_id(
        self, service: Service, method: str, op: dict[str, Any], json: Any
    ) -> None:
        status, single = await service.call(method, f"{MEMORIES}/{MISSING}", json=json)
        assert status == 404
        _, batch = await service.batch([{**op, "id": MISSING}])
        assert batch["data"]["operations"][0]["error"] == single["error"]

    async def test_bad_update(self, service: Service) -> None:
        memory_id = await create(service)
        status, single = await service.call(
            "PATCH", f"{MEMORIES}/{memory_id}", json={"tags": ["ok", None]}
        )
        assert status == 400
        _, batch = await service.batch(
            [{"type": "update", "id": memory_id, "data": {"tags": ["ok", None]}}]
        )
        assert batch["data"]["operations"][0]["error"] == single["error"]
        assert single["error"]["details"] == {"field": "tags[1]", "reason": "must_be_string"}

    async def test_search(self, service: Service) -> None:
        await create(service, content="the quick brown fox", tags=["animal"])
        await create(service, content="a quick recipe")
        query = {"query": "quick", "options": {"limit": 5, "tags": ["animal"]}}
        _, single = await service.call("POST", f"{MEMORIES}/search", json=query)
        _, batch = await service.batch([{"type": "search", **query}])
        assert batch["data"]["operations"][0]["result"] == single["data"]
        assert single["data"]["total"] == 1


class TestSingleEndpointStrictness:
    """The single endpoints refuse what the batch refuses: no ignored fields, no empty tags."""

    async def test_search_body_may_not_carry_a_type(self, service: Service) -> None:
        response = await service.client.post(
            "/api/v1/memories/search",
            json={"query": "x", "type": "delete"},
            headers=service.auth(),
        )
        assert response.status == 400
        body = await response.json()
        assert body["error"]["code"] == "VALIDATION_ERROR"
        assert body["error"]["details"] == {"field": "type", "reason": "unknown_field"}

    async def test_empty_tag_parameter_is_refused(self, service: Service) -> None:
        response = await service.client.get("/api/v1/memories?tag=", headers=service.auth())
        assert response.status == 400
        body = await response.json()
        assert body["error"]["details"]["field"] == "tag"
