"""`/readyz` means "can serve writes": it answered ready while every write failed (a read-only
or immutable file, a full disk), because it only ran a SELECT. Now the SQLite store proves it
with a real write, at most once a second."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batchsvc_backends.sqlite.store import SQLiteStore

from tests.helpers.faults import FaultyStorage
from tests.helpers.processes import Server, make_key, serving, write_config
from tests.helpers.service import ServiceFactory


def wait_for_status(server: Server, status: int, seconds: float = 10) -> Any:
    """Poll /readyz until it answers `status`; its last body."""
    deadline = time.monotonic() + seconds
    while True:
        got, body = server.call("GET", "/readyz")
        if got == status or time.monotonic() > deadline:
            assert got == status, body
            return body
        time.sleep(0.2)


def creates(count: int, size: int) -> dict[str, Any]:
    return {
        "operations": [
            {"type": "create", "data": {"content": f"{n} " + "tide pool " * (size // 10)}}
            for n in range(count)
        ],
        "options": {"continue_on_error": True},
    }


class TestRealFaults:
    def test_immutable_files(self, tmp_path: Path) -> None:
        config = write_config(tmp_path)
        key = make_key(tmp_path, config)
        with serving(tmp_path, config) as server:
            status, body = server.call("POST", "/api/v1/memories", key, {"content": "before"})
            assert status == 201, body
            assert server.call("GET", "/readyz")[0] == 200
            data = tmp_path / "data"
            files = [str(data / "batchsvc.db"), str(data / "batchsvc.db-wal")]
            # Not the -shm file: SQLite maps it, and an immutable mapping kills the process
            # with SIGBUS at the next write (found here; see the report).
            if subprocess.run(["chattr", "+i", *files], capture_output=True).returncode != 0:
                pytest.skip("chattr +i does not work here (root ignores plain permissions)")
            try:
                body = wait_for_status(server, 503)
                assert body["error"]["code"] == "BACKEND_UNAVAILABLE"
                assert body["error"]["details"]["reason"] in ("read_only", "io_error"), body
                status, body = server.call("POST", "/api/v1/memories", key, {"content": "no"})
                assert (status, body["error"]["code"]) == (503, "BACKEND_UNAVAILABLE")
                # Reads still work: only writes cannot.
                assert server.call("GET", "/api/v1/memories", key)[0] == 200
            finally:
                subprocess.run(["chattr", "-i", *files], check=True)
            wait_for_status(server, 200)
            status, body = server.call("POST", "/api/v1/memories", key, {"content": "after"})
            assert status == 201, body
        not_ready = [line for line in server.log_lines() if line["event"] == "not_ready"]
        assert not_ready and "data/batchsvc.db" in not_ready[0]["error"]

    def test_a_full_disk(self, tmp_path: Path, tiny_disk: Path) -> None:
        config = write_config(tmp_path, db=str(tiny_disk / "batchsvc.db"))
        key = make_key(tmp_path, config)
        with serving(tmp_path, config) as server:
            status, body = server.call("POST", "/api/v1/batch", key, creates(5, 1000))
            assert status == 200, body
            assert server.call("GET", "/readyz")[0] == 200
            filler = tiny_disk / "filler"
            fill(filler)
            body = wait_for_status(server, 503)
            assert body["error"]["details"] == {"reason": "disk_full"}, body
            status, body = server.call("POST", "/api/v1/batch", key, creates(20, 50_000))
            assert status == 207, body
            errors = {op["error"]["code"] for op in body["data"]["operations"]}
            assert errors == {"BACKEND_UNAVAILABLE"}, body
            filler.unlink()
            wait_for_status(server, 200)
            status, body = server.call("POST", "/api/v1/batch", key, creates(20, 50_000))
            assert status == 200, body


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, the real thing for a full disk; skipped where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path) -> None:
    """Write `path` until its disk has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        chunk = b"\0" * 65536
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


class TestProbe:
    async def test_answers_are_kept_for_a_second(self, tmp_path: Path) -> None:
        path = tmp_path / "store.db"
        async with SQLiteStore(str(path)) as store:
            assert (await store.readiness()).ready
            first = probed_at(path)
            assert (await store.readiness()).ready
            assert probed_at(path) == first  # the kept answer: no second write
            await asyncio.sleep(1.1)
            assert (await store.readiness()).ready
            assert probed_at(path) != first

    async def test_a_damaged_file_stays_unready(self, tmp_path: Path) -> None:
        """The probe rewrites one page, which says nothing of the damaged ones."""
        path = tmp_path / "store.db"
        async with SQLiteStore(str(path)) as store:
            store._health.saw(sqlite_error("database disk image is malformed", 11))
            for _ in range(2):
                answer = await store.readiness()
                assert (answer.ready, answer.reason) == (False, "corrupt")
                assert str(path) in answer.message or "malformed" in answer.message


def probed_at(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT value FROM settings WHERE key = 'readiness_probe'")
        return str(rows.fetchone()[0])


def sqlite_error(message: str, code: int) -> sqlite3.Error:
    error = sqlite3.DatabaseError(message)
    error.sqlite_errorcode = code
    return error


class TestTheEndpoint:
    async def test_not_ready_says_why(self, service_factory: ServiceFactory) -> None:
        storage = FaultyStorage(readiness=True)
        service = await service_factory(storage=storage)
        assert (await service.client.get("/readyz")).status == 200
        storage.not_ready("disk_full", "the disk of /x/y.db has 0 bytes free")
        response = await service.client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["error"]["code"] == "BACKEND_UNAVAILABLE"
        assert body["error"]["details"] == {"reason": "disk_full"}
        assert "/x/y.db" not in body["error"]["message"]  # a public endpoint: the log has it
        assert storage.calls["readiness"] == 2 and storage.calls["ping"] == 0
