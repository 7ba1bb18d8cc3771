"""A service in the test's own process, on a real loopback socket (aiohttp's test client),
and a client that knows its key; `batchsvc serve` processes are in `processes`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestClient
from attrs import define

from batchsvc.api_keys import KeyStore
from batchsvc.config import Config, parse_config
from batchsvc.embedding import Embedder
from batchsvc.storage import Storage

#: The configuration the project ships (config/default.toml).
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config" / "default.toml"

# Generous limits so tests that are not about rate limiting never hit it.
TEST_RATE_LIMIT = {"batch_requests": 100_000, "other_requests": 100_000, "window_seconds": 60}


def make_config(keys_file: Path, **sections: Any) -> Config:
    """A test config. No embedder unless a test asks (`embedder={"name": "wordllama"}`): most
    tests are not about search and should not pay for vectors."""
    raw: dict[str, Any] = {
        "auth": {"keys_file": str(keys_file)},
        "rate_limit": TEST_RATE_LIMIT,
        "embedder": {"name": "none"},
        # The in-memory backend unless a test asks for another: fast, and nothing on disk.
        "storage": {"backend": "memory", "options": {}},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_config(raw, "test", env={})


@define
class Service:
    """A live service and a key for tenant `acme` (more keys through `new_key`)."""

    client: TestClient[web.Request, web.Application]
    key: str
    keys: KeyStore

    @classmethod
    def of(cls, client: TestClient[web.Request, web.Application], keys_file: Path) -> Service:
        """The service `client` talks to, with a new key for tenant `acme` in `keys_file`."""
        keys = KeyStore(keys_file)
        return cls(client=client, key=keys.create("acme")[1], keys=keys)

    @property
    def app(self) -> web.Application:
        return self.client.app

    def new_key(self, tenant: str) -> str:
        return self.keys.create(tenant)[1]

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def batch(
        self,
        operations: list[Any],
        options: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST a batch; returns the status and the decoded body."""
        body: dict[str, Any] = {"operations": operations}
        if options is not None:
            body["options"] = options
        response = await self.client.post(
            "/api/v1/batch", json=body, headers={**self.auth(key), **(headers or {})}
        )
        return response.status, await response.json()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        key: str | None = None,
    ) -> tuple[int, Any]:
        """One request with this service's key (or `key`); the status and the decoded body."""
        kwargs: dict[str, Any] = {"headers": self.auth(key)}
        if json is not None:
            kwargs["json"] = json
        if params is not None:
            kwargs["params"] = params
        response = await self.client.request(method, path, **kwargs)
        return response.status, await response.json()

    async def create(self, content: str = "a memory", key: str | None = None, **data: Any) -> str:
        """Create one memory through a batch; returns its id."""
        status, body = await self.batch(
            [{"type": "create", "data": {"content": content, **data}}], key=key
        )
        assert status == 200, body
        memory_id: str = body["data"]["operations"][0]["result"]["id"]
        return memory_id


class ServiceFactory(Protocol):
    """The `service_factory` fixture (tests/conftest.py): starts a service on a real socket.
    Keyword arguments other than `storage` and `embedder` are config sections, merged into
    `make_config`'s (`limits={"max_body_bytes": 1000}`)."""

    async def __call__(
        self, storage: Storage | None = None, embedder: Embedder | None = None, **sections: Any
    ) -> Service: ...
