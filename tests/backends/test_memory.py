"""The in-memory backend passes the storage conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from batchsvc_backends.memory import MemoryStore

from batchsvc.testing import StorageConformance


class TestMemoryStore(StorageConformance):
    """The reference backend against the contract of `batchsvc.storage`."""

    @pytest.fixture
    async def storage(self) -> AsyncIterator[MemoryStore]:
        async with MemoryStore.from_options({}) as store:
            yield store
