"""Fixtures: every HTTP test talks to a real aiohttp server on a loopback socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from batchsvc.api_keys import KeyStore
from batchsvc.embedding import Embedder
from batchsvc.http.app import create_app
from batchsvc.storage import Storage
from tests.helpers.faults import FaultyStorage
from tests.helpers.service import Service, make_config

ServiceFactory = Callable[..., Awaitable[Service]]


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
        keys = KeyStore(keys_file)
        return Service(client=client, key=keys.create("acme")[1], keys=keys)

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
