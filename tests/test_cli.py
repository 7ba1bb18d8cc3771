"""The command line, run as a real process: keys and serve."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import DEFAULTS_CONFIG, Server, run_cli, serving

KEY_PATTERN = re.compile(r"bsk_[A-Za-z0-9_-]{43}")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "service.toml"
    path.write_text(DEFAULTS_CONFIG, encoding="utf-8")
    return path


class TestKeys:
    """`keys create` prints the key once and nothing else; the file keeps only its hash."""

    def test_create_prints_only_the_key(self, tmp_path: Path, config_file: Path) -> None:
        made = run_cli(
            "keys", "create", "--tenant", "acme", "--config", str(config_file), cwd=tmp_path
        )
        assert made.returncode == 0, made.stderr
        assert KEY_PATTERN.fullmatch(made.stdout.strip())
        assert made.stdout.count("\n") == 1
        stored = (tmp_path / "state" / "keys.json").read_text()
        assert made.stdout.strip() not in stored
        assert json.loads(stored)["keys"][0]["tenant"] == "acme"

    def test_list_and_revoke(self, tmp_path: Path, config_file: Path) -> None:
        secret = run_cli(
            "keys", "create", "--tenant", "acme", "--config", str(config_file), cwd=tmp_path
        ).stdout.strip()
        listing = run_cli("keys", "list", "--config", str(config_file), cwd=tmp_path).stdout
        key_id, tenant, _, state = listing.strip().split("\t")
        assert (tenant, state) == ("acme", "active")
        assert secret not in listing
        revoked = run_cli("keys", "revoke", key_id, "--config", str(config_file), cwd=tmp_path)
        assert revoked.returncode == 0
        listing = run_cli("keys", "list", "--config", str(config_file), cwd=tmp_path).stdout
        assert "\trevoked " in listing
        missing = run_cli("keys", "revoke", "key_nope", "--config", str(config_file), cwd=tmp_path)
        assert missing.returncode == 1

    def test_bad_tenant_name_is_refused(self, tmp_path: Path, config_file: Path) -> None:
        made = run_cli(
            "keys", "create", "--tenant", "a b", "--config", str(config_file), cwd=tmp_path
        )
        assert made.returncode == 2
        assert made.stdout == ""


class TestBadConfiguration:
    """A bad file fails at start with the path of the bad field; nothing starts."""

    def test_wrong_type_names_the_field(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text('[server]\nport = "8080"\n', encoding="utf-8")
        result = run_cli("serve", "--config", str(path), cwd=tmp_path)
        assert result.returncode == 2
        assert "$.server.port" in result.stderr and str(path) in result.stderr

    def test_unknown_backend_lists_installed_ones(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text('[storage]\nbackend = "oracle"\n', encoding="utf-8")
        result = run_cli("serve", "--config", str(path), cwd=tmp_path)
        assert result.returncode == 2
        assert "'oracle'" in result.stderr and "memory" in result.stderr


@pytest.fixture
def served_process(tmp_path: Path, config_file: Path) -> Iterator[Server]:
    """A real `batchsvc serve` process and a key made by the CLI; it must stop cleanly."""
    with serving(tmp_path, config_file, tenant="acme", check_exit=True) as server:
        yield server


@pytest.fixture
def served(served_process: Server) -> Iterator[tuple[str, str]]:
    yield served_process.base, served_process.key
    assert served_process.stop() == 0


class TestServe:
    """`batchsvc serve` answers on the given port with keys made by `keys create`."""

    def test_batch_with_a_cli_key(self, served: tuple[str, str]) -> None:
        base, key = served
        body = json.dumps({"operations": [{"type": "create", "data": {"content": "hi"}}]})
        request = urllib.request.Request(
            f"{base}/api/v1/batch",
            data=body.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert json.load(response)["data"]["processed"] == 1

    def test_key_made_while_running_works_at_once(
        self, served: tuple[str, str], tmp_path: Path, config_file: Path
    ) -> None:
        base, _ = served
        key = run_cli(
            "keys", "create", "--tenant", "later", "--config", str(config_file), cwd=tmp_path
        ).stdout.strip()
        request = urllib.request.Request(
            f"{base}/api/v1/memories", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["data"]["items"] == []


class TestLogs:
    """`serve` logs one JSON line per request on standard error, with its context."""

    def test_request_lines_carry_context(self, served_process: Server) -> None:
        body = json.dumps({"operations": [{"type": "create", "data": {"content": "hi"}}]})
        request = urllib.request.Request(
            f"{served_process.base}/api/v1/batch",
            data=body.encode(),
            headers={
                "Authorization": f"Bearer {served_process.key}",
                "Content-Type": "application/json",
                "X-Batch-Id": "logged-batch",
                "X-Request-Id": "req-from-client",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["X-Request-Id"] == "req-from-client"
        assert served_process.stop() == 0
        lines = served_process.log_lines()
        logged = [
            line
            for line in lines
            if line.get("request_id") == "req-from-client" and line["event"] == "request"
        ]
        assert len(logged) == 1
        entry = logged[0]
        assert entry["event"] == "request" and entry["status"] == 200
        assert entry["batch_id"] == "logged-batch" and entry["tenant"] == "acme"
        assert entry["path"] == "/api/v1/batch" and entry["level"] == "info"
        assert served_process.key not in json.dumps(lines)


class TestDamagedKeysFile:
    """A damaged keys file is never overwritten by the CLI, stops `serve` from starting, and
    while serving turns every keyed request away with 503 (the server's fault, not the key's)."""

    def test_cli_refuses_and_keeps_the_file(self, tmp_path: Path, config_file: Path) -> None:
        keys = tmp_path / "state" / "keys.json"
        keys.parent.mkdir()
        keys.write_text("{not json", encoding="utf-8")
        made = run_cli(
            "keys", "create", "--tenant", "acme", "--config", str(config_file), cwd=tmp_path
        )
        assert made.returncode == 2 and made.stdout == ""
        assert "keys.json" in made.stderr
        assert keys.read_text(encoding="utf-8") == "{not json"

    def test_serve_refuses_to_start(self, tmp_path: Path, config_file: Path) -> None:
        keys = tmp_path / "state" / "keys.json"
        keys.parent.mkdir()
        keys.write_text('{"keys": [{"key_id": 1}]}', encoding="utf-8")
        started = run_cli("serve", "--config", str(config_file), "--port", "0", cwd=tmp_path)
        assert started.returncode == 2
        assert (
            "cannot start" in started.stderr and str(Path("state") / "keys.json") in started.stderr
        )
        assert "Traceback" not in started.stderr

    def test_damaged_while_serving_answers_503_until_repaired(
        self, served_process: Server, tmp_path: Path
    ) -> None:
        keys = tmp_path / "state" / "keys.json"
        good = keys.read_bytes()
        keys.write_text('{"keys": "broken"}', encoding="utf-8")
        request = urllib.request.Request(
            f"{served_process.base}/api/v1/memories",
            headers={"Authorization": f"Bearer {served_process.key}"},
        )
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 503
            error = json.load(refused.value)["error"]
            assert error["code"] == "BACKEND_UNAVAILABLE"
            assert error["details"] == {"reason": "keys_file_unreadable"}
            assert refused.value.headers["X-Request-Id"]
        keys.write_bytes(good)  # repaired: read again at once, no restart
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        assert served_process.stop() == 0
        lines = served_process.log_lines()
        reported = [line for line in lines if line["event"] == "keys_file_unreadable"]
        # Once per damaged version of the file, not once per request; it names the file.
        assert len(reported) == 1
        assert reported[0]["level"] == "error" and reported[0]["path"].endswith("keys.json")


class TestDefaultStorage:
    """`serve` on the default configuration keeps memories in SQLite in the data folder: they
    survive a restart."""

    def test_memories_survive_a_restart(self, tmp_path: Path, config_file: Path) -> None:
        key = run_cli(
            "keys", "create", "--tenant", "acme", "--config", str(config_file), cwd=tmp_path
        ).stdout.strip()
        body = json.dumps({"content": "kept across restarts"}).encode()
        with serving(tmp_path, config_file, check_exit=True) as server:
            base = server.base
            request = urllib.request.Request(
                f"{base}/api/v1/memories",
                data=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                memory_id = json.load(response)["data"]["id"]
        assert (tmp_path / "data" / "batchsvc.db").is_file()
        with serving(tmp_path, config_file, check_exit=True) as server:
            base = server.base
            request = urllib.request.Request(
                f"{base}/api/v1/memories/{memory_id}", headers={"Authorization": f"Bearer {key}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.load(response)["data"]["content"] == "kept across restarts"


class TestReembed:
    """Another embedder on a file with vectors: `serve` refuses, naming `batchsvc reembed`;
    after it, `serve` starts and ranks by the new vectors."""

    def test_serve_refuses_until_reembed_has_run(self, tmp_path: Path, config_file: Path) -> None:
        key = run_cli(
            "keys", "create", "--tenant", "acme", "--config", str(config_file), cwd=tmp_path
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        contents = ["the walrus sleeps on the ice floe", "sourdough bread with rye flour"]
        batch = {"operations": [{"type": "create", "data": {"content": c}} for c in contents]}
        with serving(tmp_path, config_file, check_exit=True) as server:  # wordllama, 256 dims
            base = server.base
            request = urllib.request.Request(
                f"{base}/api/v1/batch", data=json.dumps(batch).encode(), headers=headers
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                ids = [op["result"]["id"] for op in json.load(response)["data"]["operations"]]

        narrow = tmp_path / "narrow.toml"
        narrow.write_text(
            config_file.read_text() + '[embedder]\nname = "wordllama"\n'
            "[embedder.options]\ndimensions = 64\n",
            encoding="utf-8",
        )
        refused = run_cli("serve", "--config", str(narrow), "--port", "0", cwd=tmp_path)
        assert refused.returncode == 2
        assert "cannot start" in refused.stderr and "batchsvc reembed" in refused.stderr

        done = run_cli("reembed", "--config", str(narrow), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "re-embedded 2 memories with wordllama l2_supercat 64" in done.stderr

        search = {"query": "a loaf of rye bread", "options": {"mode": "semantic", "limit": 1}}
        with serving(tmp_path, narrow, check_exit=True) as server:
            base = server.base
            request = urllib.request.Request(
                f"{base}/api/v1/memories/search", data=json.dumps(search).encode(), headers=headers
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                hits = json.load(response)["data"]["results"]
        assert [hit["id"] for hit in hits] == [ids[1]]

    def test_reembed_without_an_embedder_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "none.toml"
        path.write_text('[embedder]\nname = "none"\n', encoding="utf-8")
        result = run_cli("reembed", "--config", str(path), cwd=tmp_path)
        assert result.returncode == 2
        assert "needs an embedder" in result.stderr
