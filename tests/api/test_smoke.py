"""The spec's own example, sent through a real socket, gets the spec's response shape."""

from __future__ import annotations

import gc
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from batchsvc.http.app import create_app, freeze_startup_heap
from tests.helpers.service import Service, make_config


class TestSpecExample:
    """The curl example of the spec, as written but for the host."""

    async def test_spec_example_gets_the_spec_shape(self, service: Service) -> None:
        body = {
            "operations": [
                {
                    "type": "create",
                    "data": {
                        "content": "User profile data",
                        "metadata": {"type": "profile", "user_id": "123"},
                        "tags": ["user", "profile"],
                    },
                },
                {
                    "type": "create",
                    "data": {
                        "content": "Product catalog entry",
                        "metadata": {"type": "product", "category": "electronics"},
                        "tags": ["product", "catalog"],
                    },
                },
                {"type": "search", "query": "user authentication", "options": {"limit": 5}},
            ],
            "options": {"continue_on_error": True, "max_retries": 3, "timeout": 30000},
        }
        response = await service.client.post(
            "/api/v1/batch",
            json=body,
            headers={**service.auth(), "X-Batch-Id": "migration-2024-01-15"},
        )
        assert response.status == 200
        assert response.headers["X-Batch-Id"] == "migration-2024-01-15"
        payload = await response.json()
        assert payload["success"] is True
        data = payload["data"]
        assert data["batch_id"] == "migration-2024-01-15"
        assert (data["processed"], data["failed"], data["total"]) == (3, 0, 3)
        assert isinstance(data["execution_time"], int)
        assert [op["index"] for op in data["operations"]] == [0, 1, 2]
        created = data["operations"][0]["result"]
        assert created["id"].startswith("mem_") and len(created["id"]) == 20
        assert created["created_at"].endswith("Z")
        search = data["operations"][2]["result"]
        assert search["total"] == len(search["results"]) == 1
        assert search["results"][0]["content"] == "User profile data"
        assert 0 < search["results"][0]["score"] <= 1
        assert data["summary"] == {
            "creates": 2,
            "reads": 0,
            "updates": 0,
            "deletes": 0,
            "searches": 1,
        }


class TestStartupHeap:
    """`freeze_startup_heap`, which `batchsvc serve` applies: the heap alive once the store
    and embedder have started is hidden from the collector while serving, and given back."""

    async def test_frozen_while_serving_and_released_at_shutdown(self, keys_file: Path) -> None:
        gc.unfreeze()
        app = create_app(make_config(keys_file))
        freeze_startup_heap(app)
        assert gc.get_freeze_count() == 0
        async with TestClient(TestServer(app)) as client:
            assert gc.get_freeze_count() > 1000
            response = await client.get("/healthz")
            assert response.status == 200
        assert gc.get_freeze_count() == 0
