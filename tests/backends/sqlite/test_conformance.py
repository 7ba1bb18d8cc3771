"""The SQLite backend passes the storage conformance suite, each test on a fresh file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.testing import StorageConformance


class TestSQLiteStore(StorageConformance):
    """The SQLite backend against the contract of `batchsvc.storage`, on a real file."""

    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
        async with SQLiteStore.from_options({"path": str(tmp_path / "memories.db")}) as store:
            yield store
