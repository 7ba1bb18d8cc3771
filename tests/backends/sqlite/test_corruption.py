"""A damaged page of the memories table: reads, searches and writes that reach it answer
`INTERNAL_ERROR` (500), which clients do not retry, and the executor does not either; they
used to answer `BACKEND_UNAVAILABLE`, the code documented as transient. The service logs the
damage at error level, naming the file and never a memory's content; `/readyz` says
`corrupt`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers.processes import make_key, serving, write_config

SECRET = "confidential walrus migration"


def damage_memories_table(db: Path) -> None:
    """Overwrite the header and the middle of the memories table's root B-tree page."""
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
        ).fetchone()
    conn.close()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    start = (root - 1) * page_size
    with db.open("r+b") as file:
        file.seek(start)  # the page's type flag and cell count: no valid B-tree page has 0xEE
        file.write(b"\xee" * 12)
        file.seek(start + page_size // 2)
        file.write(b"\xee" * 256)


def test_a_damaged_page_is_internal_error_and_not_retried(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    key = make_key(tmp_path, config)
    ids: list[str] = []
    with serving(tmp_path, config, "before.log") as server:
        for part in range(2):  # a few pages of memories: the root page is an interior one
            batch = {
                "operations": [
                    {"type": "create", "data": {"content": f"{SECRET} {n} " + "ice floe " * 60}}
                    for n in range(part * 100, part * 100 + 100)
                ]
            }
            status, body = server.call("POST", "/api/v1/batch", key, batch)
            assert status == 200, body
            ids += [op["result"]["id"] for op in body["data"]["operations"]]
    db = tmp_path / "data" / "batchsvc.db"
    damage_memories_table(db)

    with serving(tmp_path, config, "after.log") as server:
        status, body = server.call("GET", f"/api/v1/memories/{ids[7]}", key)
        assert (status, body["error"]["code"]) == (500, "INTERNAL_ERROR"), body
        status, body = server.call(
            "POST", "/api/v1/memories/search", key, {"query": "walrus", "options": {"limit": 3}}
        )
        assert (status, body["error"]["code"]) == (500, "INTERNAL_ERROR"), body
        status, body = server.call("GET", "/api/v1/memories", key)
        assert (status, body["error"]["code"]) == (500, "INTERNAL_ERROR"), body
        retried = {
            "operations": [
                {"type": "create", "data": {"content": "a new memory"}},
                {"type": "update", "id": ids[3], "data": {"title": "renamed"}},
                {"type": "read", "id": ids[4]},
                {"type": "search", "query": "walrus"},
            ],
            "options": {"max_retries": 3, "continue_on_error": True},
        }
        status, body = server.call("POST", "/api/v1/batch", key, retried)
        assert status == 207, body
        for op in body["data"]["operations"]:
            assert op["status"] == "failed", op
            assert op["error"]["code"] == "INTERNAL_ERROR", op
            assert op["attempts"] == 1, op  # not retried
        status, body = server.call("GET", "/readyz")
        assert (status, body["error"]["details"]) == (503, {"reason": "corrupt"}), body
    logged = [line for line in server.log_lines() if line["event"] == "storage_corrupt"]
    assert logged and all(line["level"] == "error" for line in logged)
    assert all("data/batchsvc.db" in line["error"] for line in logged), logged
    assert SECRET not in server.log.read_text(encoding="utf-8")
