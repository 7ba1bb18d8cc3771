"""A real `batchsvc serve` for each module: raw bytes need a real socket, and the log a
real standard error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.processes import Server, serving, write_config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`batchsvc serve` for the module (memory backend, no embedder) and a key for `acme`."""
    folder = tmp_path_factory.mktemp("served")
    with serving(folder, write_config(folder, backend="memory"), tenant="acme") as server:
        yield server
