"""Fixtures for every folder: a service on a real loopback socket (`service_factory`,
`service`), a store that can be told to fail (`faulty`), and a SQLite store on a fresh file
(`db`, `store`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.embedding import Embedder
from batchsvc.http.app import create_app
from batchsvc.storage import Storage
from tests.helpers.faults import FaultyStorage
from tests.helpers.service import Service, ServiceFactory, make_config
from tests.helpers.sqlite import open_store


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def service_factory(aiohttp_client: Any, keys_file: Path) -> ServiceFactory:
    """`await service_factory(storage=..., embedder=..., limits={...}, rate_limit={...})`
    starts a service."""

    async def start(
        storage: Storage | None = None, embedder: Embedder | None = None, **sections: Any
    ) -> Service:
        config = make_config(keys_file, **sections)
        app = create_app(config, storage=storage, embedder=embedder)
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return Service.of(client, keys_file)

    return start


@pytest.fixture
async def service(service_factory: ServiceFactory) -> Service:
    """The default service: in-memory backend, generous rate limits."""
    return await service_factory()


@pytest.fixture
def faulty() -> FaultyStorage:
    """A real MemoryStore that can be told to fail, stall and count calls."""
    return FaultyStorage()


@pytest.fixture
async def faulty_service(service_factory: ServiceFactory, faulty: FaultyStorage) -> Service:
    return await service_factory(storage=faulty)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Where a SQLite file goes: in a folder not made yet, which the store makes."""
    return tmp_path / "data" / "memories.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store, open, on a fresh file at `db`."""
    async with open_store(db) as opened:
        yield opened
