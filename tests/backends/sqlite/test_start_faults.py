"""Starting on a SQLite file that cannot serve: the start ends, with exit code 2 and one
paragraph that names the file, says what SQLite said and what to do; and a second process on a
file another one serves is refused the same way (each keeps the file's search indexes in its
memory, so two would not see each other's memories by their words)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from batchsvc_backends.sqlite.store import SQLiteStore

from batchsvc.errors import BackendError
from tests.helpers.processes import make_key, refused, serving, write_config


def assert_refused(code: int, stderr: str, *words: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("batchsvc: cannot start: "), stderr
    assert stderr.count("\n") == 1, stderr  # one paragraph
    for word in words:
        assert word in stderr, (word, stderr)


def made_database(folder: Path) -> Path:
    """A real database with a few memories, written through a real server."""
    config = write_config(folder)
    key = make_key(folder, config)
    with serving(folder, config) as server:
        for n in range(30):
            status, _ = server.call(
                "POST", "/api/v1/memories", key, {"content": f"sea shanty number {n} " * 20}
            )
            assert status == 201
    return folder / "data" / "batchsvc.db"


class TestStorageThatCannotOpen:
    """Once, each of these printed a traceback and left a process that never listened and
    never exited (aiosqlite's connection thread, left open, is not a daemon)."""

    @pytest.mark.parametrize("embedder", ["none", "wordllama"])
    def test_a_file_that_is_not_a_database(self, tmp_path: Path, embedder: str) -> None:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "batchsvc.db").write_bytes(bytes(range(256)) * 40)
        config = write_config(tmp_path, embedder=embedder)
        code, stderr = refused(tmp_path, "serve", "--config", str(config))
        assert_refused(
            code, stderr, "data/batchsvc.db", "file is not a database", "restore it from a backup"
        )

    def test_a_truncated_database(self, tmp_path: Path) -> None:
        db = made_database(tmp_path)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
        code, stderr = refused(tmp_path, "serve", "--config", str(write_config(tmp_path)))
        assert_refused(code, stderr, "data/batchsvc.db", "malformed", "restore it from a backup")

    def test_a_folder_that_cannot_be_made(self, tmp_path: Path) -> None:
        # Root ignores permissions; a folder under a regular file stops root too.
        (tmp_path / "plain-file").write_text("not a folder", encoding="utf-8")
        config = write_config(tmp_path, db="plain-file/data/batchsvc.db")
        code, stderr = refused(tmp_path, "serve", "--config", str(config))
        assert_refused(code, stderr, "plain-file/data/batchsvc.db", "Not a directory", "writable")

    def test_a_file_that_cannot_be_written(self, tmp_path: Path) -> None:
        """It used to start, answer reads and /readyz, and fail every write."""
        db = made_database(tmp_path)
        if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i does not work here (root ignores plain permissions)")
        try:
            code, stderr = refused(tmp_path, "serve", "--config", str(write_config(tmp_path)))
        finally:
            subprocess.run(["chattr", "-i", str(db)], check=True)
        assert_refused(code, stderr, "data/batchsvc.db", "readonly", "writable")

    async def test_a_failed_open_leaves_no_thread_behind(self, tmp_path: Path) -> None:
        """The cause of the hang, where it lies: a connection opened on a damaged file."""
        db = tmp_path / "damaged.db"
        db.write_bytes(b"\x00" * 8192)
        before = set(threading.enumerate())
        with pytest.raises(BackendError, match="file is not a database"):
            async with SQLiteStore(str(db)):
                pass
        await asyncio.sleep(0.1)  # a stopping thread may need a moment to end
        left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        assert [t for t in left if not t.daemon] == []


class TestOneProcessPerFile:
    def test_a_second_process_is_refused_until_the_first_is_gone(self, tmp_path: Path) -> None:
        config = write_config(tmp_path)
        key = make_key(tmp_path, config)
        with serving(tmp_path, config, "first.log") as first:
            status, body = first.call("POST", "/api/v1/memories", key, {"content": "kept"})
            assert status == 201, body
            code, stderr = refused(tmp_path, "serve", "--config", str(config))
            assert_refused(
                code,
                stderr,
                "data/batchsvc.db",
                "another batchsvc process",
                f"pid {first.process.pid}",
            )
            # reembed, which rewrites every vector, is refused while the service runs too.
            with_embedder = write_config(tmp_path, embedder="wordllama")
            code, stderr = refused(tmp_path, "reembed", "--config", str(with_embedder))
            assert_refused(code, stderr, "data/batchsvc.db", "another batchsvc process")
            # The first one still serves.
            assert first.call("GET", "/readyz")[0] == 200
            # kill -9: the kernel drops the lock with the process; a restart is never refused.
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=15)
        with serving(tmp_path, config, "second.log") as second:
            status, body = second.call("GET", "/api/v1/memories", key)
            assert status == 200 and [m["content"] for m in body["data"]["items"]] == ["kept"]

    def test_another_file_is_not_refused(self, tmp_path: Path) -> None:
        config = write_config(tmp_path)
        other = tmp_path / "other.toml"
        other.write_text(
            config.read_text(encoding="utf-8").replace("data/batchsvc.db", "data/other.db"),
            encoding="utf-8",
        )
        with serving(tmp_path, config, "a.log") as a, serving(tmp_path, other, "b.log") as b:
            assert a.call("GET", "/readyz")[0] == 200
            assert b.call("GET", "/readyz")[0] == 200
