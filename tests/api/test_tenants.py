"""Tenant isolation through a real socket: to another tenant a memory does not exist.

Tenant A is `acme` (the service's own key), tenant B is `globex`. Every way B could touch A's
memory answers exactly what a truly missing id answers, and A's data is unchanged afterwards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers.responses import MISSING
from tests.helpers.service import Service

MEMORIES = "/api/v1/memories"


def without_id(error: dict[str, Any], memory_id: str) -> dict[str, Any]:
    """The error with the id it names replaced, so two NOT_FOUNDs can be compared by shape."""
    text = orjson.dumps(error).decode().replace(memory_id, "<id>")
    result: dict[str, Any] = orjson.loads(text)
    return result


def read_text(path: Path) -> str:
    return path.read_text()


@pytest.fixture
def globex(service: Service) -> str:
    return service.new_key("globex")


@pytest.fixture
async def acme_memory(service: Service) -> str:
    return await service.create(
        "acme quarterly secret plan",
        title="Plan",
        metadata={"owner": "acme", "level": 3},
        tags=["secret", "plan"],
        memory_type="project",
    )


async def snapshot(service: Service, memory_id: str) -> dict[str, Any]:
    status, body = await service.call("GET", f"{MEMORIES}/{memory_id}")
    assert status == 200, body
    memory: dict[str, Any] = body["data"]
    return memory


SINGLE_CALLS = [
    ("GET", None),
    ("PATCH", {"content": "globex was here", "metadata": {"owner": None}}),
    ("DELETE", None),
]


class TestSingleEndpoints:
    """B reading, updating or deleting A's memory gets 404 NOT_FOUND (never FORBIDDEN), shaped
    exactly like the answer for an id that exists nowhere; A's memory is untouched."""

    @pytest.mark.parametrize(("method", "json"), SINGLE_CALLS, ids=["read", "update", "delete"])
    async def test_foreign_is_missing(
        self, service: Service, globex: str, acme_memory: str, method: str, json: Any
    ) -> None:
        before = await snapshot(service, acme_memory)
        foreign = await service.client.request(
            method, f"{MEMORIES}/{acme_memory}", json=json, headers=service.auth(globex)
        )
        missing = await service.client.request(
            method, f"{MEMORIES}/{MISSING}", json=json, headers=service.auth(globex)
        )
        assert foreign.status == missing.status == 404
        foreign_body, missing_body = await foreign.json(), await missing.json()
        assert foreign_body["success"] is False
        assert foreign_body["error"]["code"] == "NOT_FOUND"
        assert foreign_body["error"]["details"] == {"id": acme_memory}
        assert without_id(foreign_body, acme_memory) == without_id(missing_body, MISSING)
        assert set(foreign.headers) == set(missing.headers)
        assert await snapshot(service, acme_memory) == before

    async def test_search_finds_nothing_foreign(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        await service.create("globex own plan", key=globex, tags=["plan"])
        query = {"query": "acme quarterly secret plan", "options": {"limit": 100}}
        status, body = await service.call("POST", f"{MEMORIES}/search", json=query, key=globex)
        assert status == 200
        assert acme_memory not in [hit["id"] for hit in body["data"]["results"]]
        assert all(hit["content"] == "globex own plan" for hit in body["data"]["results"])
        for options in ({"tags": ["secret"]}, {"filters": {"owner": "acme"}}):
            status, body = await service.call(
                "POST",
                f"{MEMORIES}/search",
                json={"query": "plan", "options": options},
                key=globex,
            )
            assert status == 200
            assert body["data"] == {"results": [], "total": 0}
        # A still finds its own.
        _, mine = await service.call("POST", f"{MEMORIES}/search", json=query)
        assert [hit["id"] for hit in mine["data"]["results"]] == [acme_memory]

    async def test_list_shows_only_own(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        status, body = await service.call("GET", MEMORIES, key=globex)
        assert status == 200
        assert body["data"] == {"items": [], "next_cursor": None}
        own = await service.create("globex memory", key=globex, tags=["secret"])
        for params in ({}, {"tag": "secret"}, {"memory_type": "context"}):
            _, body = await service.call("GET", MEMORIES, params=params, key=globex)
            assert [item["id"] for item in body["data"]["items"]] == [own]
        _, body = await service.call("GET", MEMORIES)
        assert [item["id"] for item in body["data"]["items"]] == [acme_memory]

    async def test_a_foreign_cursor_reveals_nothing(self, service: Service, globex: str) -> None:
        acme_ids = {await service.create(f"acme {i}") for i in range(5)}
        _, first = await service.call("GET", MEMORIES, params={"limit": "2"})
        cursor = first["data"]["next_cursor"]
        assert cursor is not None
        for i in range(5):
            await service.create(f"globex {i}", key=globex)
        status, body = await service.call(
            "GET", MEMORIES, params={"cursor": cursor, "limit": "100"}, key=globex
        )
        assert status in (200, 400)
        if status == 200:
            assert not acme_ids & {item["id"] for item in body["data"]["items"]}
        else:
            assert body["error"]["code"] == "VALIDATION_ERROR"


class TestBatchOperations:
    """The same walls inside a batch: B's operations on A's id fail NOT_FOUND like a missing id,
    and nothing of A's changes."""

    async def test_foreign_ids_fail_not_found(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        before = await snapshot(service, acme_memory)
        ops = [
            {"type": "read", "id": acme_memory},
            {"type": "update", "id": acme_memory, "data": {"content": "globex was here"}},
            {"type": "delete", "id": acme_memory},
            {"type": "search", "query": "acme quarterly secret plan"},
        ]
        status, body = await service.batch(ops, {"continue_on_error": True}, key=globex)
        assert status == 207
        results = body["data"]["operations"]
        for result in results[:3]:
            assert result["status"] == "failed"
            assert result["error"]["code"] == "NOT_FOUND"
            assert result["error"]["details"] == {"id": acme_memory}
        assert results[3]["status"] == "success"
        assert results[3]["result"] == {"results": [], "total": 0}
        assert await snapshot(service, acme_memory) == before

    async def test_foreign_looks_like_missing(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        def ops(memory_id: str) -> list[dict[str, Any]]:
            return [
                {"type": "read", "id": memory_id},
                {"type": "update", "id": memory_id, "data": {"title": "x"}},
                {"type": "delete", "id": memory_id},
            ]

        options = {"continue_on_error": True}
        _, foreign = await service.batch(ops(acme_memory), options, key=globex)
        _, missing = await service.batch(ops(MISSING), options, key=globex)
        for mine, theirs in zip(
            foreign["data"]["operations"], missing["data"]["operations"], strict=True
        ):
            assert without_id(mine, acme_memory) == without_id(theirs, MISSING)

    async def test_atomic_and_validate_only_see_the_same_walls(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        before = await snapshot(service, acme_memory)
        ops = [{"type": "delete", "id": acme_memory}]
        status, body = await service.batch(ops, {"validate_only": True}, key=globex)
        assert status == 207
        assert body["data"]["operations"][0]["error"]["code"] == "NOT_FOUND"
        status, body = await service.batch(
            [{"type": "create", "data": {"content": "g"}}, *ops], {"atomic": True}, key=globex
        )
        assert status == 422
        assert body["data"]["operations"][1]["error"]["code"] == "NOT_FOUND"
        assert await snapshot(service, acme_memory) == before


class TestReferences:
    """`"$N"` names what operation N of the same batch created, so it stays in the tenant."""

    async def test_references_resolve_in_the_batch_tenant(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        ops = [
            {"type": "create", "data": {"content": "globex draft"}},
            {"type": "update", "id": "$0", "data": {"content": "globex final"}},
            {"type": "read", "id": "$0"},
        ]
        status, body = await service.batch(ops, key=globex)
        assert status == 200, body
        results = body["data"]["operations"]
        created = results[0]["result"]["id"]
        assert created != acme_memory
        assert results[2]["result"]["id"] == created
        assert results[2]["result"]["content"] == "globex final"
        # The new memory is B's: A cannot see it, and A's own is unchanged.
        status, _ = await service.call("GET", f"{MEMORIES}/{created}")
        assert status == 404
        status, _ = await service.call("GET", f"{MEMORIES}/{created}", key=globex)
        assert status == 200
        assert (await snapshot(service, acme_memory))["content"] == "acme quarterly secret plan"

    async def test_a_failed_create_never_borrows_another_id(
        self, service: Service, globex: str, acme_memory: str
    ) -> None:
        ops = [
            {"type": "create", "data": {"content": 5}},
            {"type": "delete", "id": "$0"},
        ]
        status, body = await service.batch(ops, {"continue_on_error": True}, key=globex)
        assert status == 207
        assert body["data"]["operations"][1]["error"]["code"] == "DEPENDENCY_FAILED"
        assert body["data"]["operations"][1]["error"]["details"] == {"depends_on": 0}
        await snapshot(service, acme_memory)


class TestKeys:
    """Data belongs to the tenant, not the key; the keys file holds only hashes."""

    async def test_keys_of_one_tenant_share_its_data(
        self, service: Service, acme_memory: str
    ) -> None:
        second = service.new_key("acme")
        status, body = await service.call("GET", f"{MEMORIES}/{acme_memory}", key=second)
        assert status == 200
        assert body["data"]["id"] == acme_memory

    async def test_secrets_never_reach_the_keys_file(
        self, service: Service, globex: str, keys_file: Path
    ) -> None:
        second_acme = service.new_key("acme")
        text = read_text(keys_file)
        records = orjson.loads(text)["keys"]
        for secret, tenant in ((service.key, "acme"), (second_acme, "acme"), (globex, "globex")):
            assert secret not in text
            assert secret.split("_", 1)[1] not in text
            digest = hashlib.sha256(secret.encode()).hexdigest()
            matching = [record for record in records if record["key_hash"] == digest]
            assert len(matching) == 1
            assert matching[0]["tenant"] == tenant
        # Each stored key still works, so the hashes are what the server checks.
        for secret in (service.key, second_acme, globex):
            status, _ = await service.call("GET", MEMORIES, key=secret)
            assert status == 200

    async def test_a_key_hash_is_not_a_key(self, service: Service, keys_file: Path) -> None:
        record = orjson.loads(read_text(keys_file))["keys"][0]
        for token in (record["key_hash"], record["key_id"], "bsk_" + record["key_hash"]):
            status, body = await service.call("GET", MEMORIES, key=token)
            assert status == 401
            assert body["error"]["code"] == "UNAUTHORIZED"
