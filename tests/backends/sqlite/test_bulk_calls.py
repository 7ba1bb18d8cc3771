"""Bulk calls on SQLite (`batchsvc.batch.bulk`): the same batches with and without `create_many` and
`change_many` give equal responses and equal files, and the live search indexes equal a fresh
load of the file, also when SQLite itself fails inside a bulk call (a trigger raises).

The embedder is the real wordllama, loaded once for the module; the batches are
`tests.helpers.batches.BULK_BATCHES`, which tests/batch/test_bulk_calls.py runs on the
in-memory backend, plus one with vectors, a deleted target and the trigger's victim."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.batch import state
from batchsvc.models import MemoryPatch, SearchQuery
from batchsvc.storage import PlannedDelete, PlannedUpdate
from batchsvc.testing import LATER, make_memory
from tests.helpers.batches import (
    BULK_BATCHES,
    OPTION_SETS,
    comparable,
    create,
    delete,
    same_text,
    search,
    stored_as_data,
    update,
)
from tests.helpers.embedders import KeptEmbedder, loaded_wordllama
from tests.helpers.service import ServiceFactory

WITH_VECTORS = [
    create("the walrus sleeps", title="Animals"),
    create("sourdough with rye"),
    create("train to lisbon"),
    update("$0", content="the walrus swims"),
    update("$0", title="Sea life"),
    update("$1", content="a loaf of wheat bread"),
    delete("$2"),
    update("$1", metadata={"k": 1}),
    update("$2", content="gone"),
    update("$0", content="boom"),  # the trigger's victim, where there is one
    update("$1", content="after boom"),
    search("walrus"),
]
QUERIES = ["walrus", "wheat", "b2", "a2", "two", "after", "boom", "rye", "plain", "x"]


@pytest.fixture(scope="module")
def embedder() -> KeptEmbedder:
    """Loaded once for the module: the apps' exits leave it loaded."""
    return loaded_wordllama()


def one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor sees no bulk calls (the backend still has them)."""
    original = state.BatchState.__init__

    def init(self: state.BatchState, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.bulk = self.changes = None

    monkeypatch.setattr(state.BatchState, "__init__", init)


async def indexes_match_the_file(store: SQLiteStore, path: Path, embedder: KeptEmbedder) -> None:
    async with SQLiteStore(str(path)) as fresh:
        for text in QUERIES:
            [vector] = await embedder.embed([text])
            for query in (
                SearchQuery(text, mode="lexical", limit=100),
                SearchQuery(text, mode="hybrid", vector=vector, limit=100),
            ):
                live = [(h.memory.id, h.score) for h in await store.search("acme", query)]
                loaded = [(h.memory.id, h.score) for h in await fresh.search("acme", query)]
                assert [i for i, _ in live] == [i for i, _ in loaded]
                assert [s for _, s in live] == pytest.approx([s for _, s in loaded], abs=1e-6)


@pytest.mark.parametrize(
    "options", OPTION_SETS, ids=lambda o: "-".join(k for k, v in o.items() if v)
)
@pytest.mark.parametrize(
    ("batch", "trigger"),
    [
        *((i, False) for i in range(len(BULK_BATCHES))),
        (len(BULK_BATCHES), False),
        (len(BULK_BATCHES), True),
    ],
    ids=[*(str(i) for i in range(len(BULK_BATCHES))), "vectors", "vectors-sqlite-fails"],
)
async def test_sqlite_gives_the_results_of_one_by_one(
    service_factory: ServiceFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    embedder: KeptEmbedder,
    batch: int,
    trigger: bool,
    options: dict[str, Any],
) -> None:
    operations = [*BULK_BATCHES, WITH_VECTORS][batch]
    got = []
    for bulk in (False, True):
        if bulk:
            monkeypatch.undo()
        else:
            one_by_one(monkeypatch)
        path = tmp_path / f"bulk-{bulk}.db"
        store = SQLiteStore(str(path))
        service = await service_factory(storage=store, embedder=embedder)
        if trigger:
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "CREATE TRIGGER boom BEFORE UPDATE ON memories WHEN NEW.content = 'boom' "
                    "BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
        status, body = await service.batch(operations, options)
        got.append((status, same_text(comparable(body)), await stored_as_data(service)))
        await indexes_match_the_file(store, path, embedder)
    assert got[0] == got[1]


async def test_what_sqlite_cannot_store_is_that_changes_own_fault(tmp_path: Path) -> None:
    """Found in review: a lone surrogate, which SQLite refuses to bind (UnicodeEncodeError, a
    ValueError), failed the whole bulk call; one by one it fails only its own update."""
    async with SQLiteStore(str(tmp_path / "odd.db")) as store:
        first, second = make_memory("the walrus sleeps"), make_memory("the seal swims")
        await store.create_many("acme", [(first, None), (second, None)])
        outcomes = await store.change_many(
            "acme",
            [
                PlannedUpdate(first.id, MemoryPatch(content="seal"), LATER),
                PlannedUpdate(second.id, MemoryPatch(content="bad \ud800"), LATER),
                PlannedDelete(first.id),
            ],
            stop_at_miss=False,
        )
        assert len(outcomes) == 2 and isinstance(outcomes[1], ValueError)
        changed = await store.get("acme", first.id)
        assert changed is not None and changed.content == "seal"
        assert await store.get("acme", second.id) == second
